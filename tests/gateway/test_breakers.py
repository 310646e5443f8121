"""Circuit breakers on a hand-driven clock: one probe per recovery, never stuck half-open."""
from types import SimpleNamespace

from gateway.health import CLOSED, HALF_OPEN, OPEN, Breakers


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def breakers(clock, threshold=2, recovery=10):
    return Breakers(SimpleNamespace(failure_threshold=threshold, recovery_timeout=recovery), clock)


def state(b, name):
    return b.snapshot()[name]["state"]


def test_opens_after_threshold_and_lets_one_probe_through_after_recovery():
    """Consecutive failures open the circuit; after recovery_timeout exactly one call may go out."""
    clock = Clock()
    b = breakers(clock)
    b.failure("p/m")
    assert b.allow("p/m") and state(b, "p/m") == CLOSED
    b.failure("p/m")
    assert state(b, "p/m") == OPEN and not b.allow("p/m")
    clock.now = 10
    assert b.allow("p/m") and state(b, "p/m") == HALF_OPEN
    assert not b.allow("p/m")                      # the probe is out: nobody else goes
    b.success("p/m")
    assert state(b, "p/m") == CLOSED and b.allow("p/m")


def test_looking_does_not_take_the_probe():
    """`would_allow` answers like `allow` but leaves the probe for the caller who really calls."""
    clock = Clock()
    b = breakers(clock, threshold=1)
    b.failure("key:1")
    clock.now = 10
    assert b.would_allow("key:1") and b.would_allow("key:1")
    assert state(b, "key:1") == OPEN
    assert b.allow("key:1")
    assert not b.would_allow("key:1")


def test_a_probe_that_never_reports_back_frees_the_next_one():
    """A probe answered neither way (never sent, or a 4xx about the key) cannot leave the circuit
    half-open for good: after another recovery period the next probe goes out."""
    clock = Clock()
    b = breakers(clock, threshold=1)
    b.failure("p/m")
    clock.now = 10
    assert b.allow("p/m")
    clock.now = 19
    assert not b.allow("p/m")
    clock.now = 20
    assert b.allow("p/m")


def test_a_failed_probe_reopens_for_longer():
    """Each new trip lengthens the open period (up to ten recovery periods)."""
    clock = Clock()
    b = breakers(clock, threshold=1)
    b.failure("p/m")
    clock.now = 10
    assert b.allow("p/m")
    b.failure("p/m")                               # the probe failed: second trip
    assert state(b, "p/m") == OPEN
    clock.now = 29
    assert not b.allow("p/m")
    clock.now = 30
    assert b.allow("p/m")

"""The group commit: jobs queued while a batch is written share the next transaction; each caller
learns only its own job's outcome, and only once it is committed."""
import threading
import time

import sqlalchemy as sa

from extensions import db
from models import User, group_commit
from models.user import utcnow

USERS = User.__table__


class Refused(group_commit.Refusal):
    pass


def add_user(name):
    def job(batch):
        batch.insert(USERS, {"username": name, "password_hash": "x", "role": "user", "disabled": False,
                             "balance": 0, "reserved": 0, "created_at": utcnow()})
        return batch
    return job


def usernames(app):
    with app.app_context():
        names = set(db.session.scalars(sa.select(User.username)))
        db.session.rollback()
        return names


def queued_behind_a_slow_batch(app, jobs):
    """Run `jobs` from threads while a first batch is held open, so that they queue up together;
    returns each job's (result, error) in order."""
    entered, release = threading.Event(), threading.Event()

    def slow(batch):
        entered.set()
        release.wait(5)
        return batch
    first = threading.Thread(target=group_commit.run, args=(app, slow))
    first.start()
    assert entered.wait(5)
    outcomes = [None] * len(jobs)

    def call(index, job):
        try:
            outcomes[index] = (group_commit.run(app, job), None)
        except Exception as exc:           # noqa: BLE001  (the error is the outcome under test)
            outcomes[index] = (None, exc)
    threads = [threading.Thread(target=call, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(app.extensions["group_commit"]._queue) < len(jobs) and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in [first, *threads]:
        thread.join(10)
    return outcomes


def test_jobs_queued_during_a_batch_are_committed_together_in_the_next(app):
    outcomes = queued_behind_a_slow_batch(app, [add_user(f"user{i}") for i in range(6)])
    batches = {id(result) for result, error in outcomes}
    assert all(error is None for _, error in outcomes)
    assert len(batches) == 1, "the six queued jobs shared one transaction"
    assert {f"user{i}" for i in range(6)} <= usernames(app)


def test_a_refusal_leaves_the_rest_of_its_batch_committed(app):
    def refuse(batch):
        raise Refused("no")
    outcomes = queued_behind_a_slow_batch(app, [add_user("before"), refuse, add_user("after")])
    assert isinstance(outcomes[1][1], Refused)
    assert outcomes[0][0] is outcomes[2][0], "one batch, not interrupted by the refusal"
    assert {"before", "after"} <= usernames(app)


def test_a_failing_job_fails_alone_and_its_writes_are_undone(app):
    def fail_after_writing(batch):
        add_user("half-written")(batch)
        batch.flush()
        raise ValueError("a bug in one job")
    outcomes = queued_behind_a_slow_batch(app, [add_user("first"), fail_after_writing, add_user("last")])
    assert isinstance(outcomes[1][1], ValueError)
    assert outcomes[0][1] is None and outcomes[2][1] is None
    names = usernames(app)
    assert {"first", "last"} <= names and "half-written" not in names


def test_a_duplicate_row_fails_only_its_own_caller(app):
    outcomes = queued_behind_a_slow_batch(app, [add_user("twin"), add_user("twin"), add_user("other")])
    assert [error is None for _, error in outcomes] == [True, False, True]
    assert isinstance(outcomes[1][1], sa.exc.IntegrityError)
    assert {"twin", "other"} <= usernames(app)


def test_a_lone_job_is_committed_before_its_caller_returns(app):
    batch = group_commit.run(app, add_user("solo"))
    assert batch is not None
    assert "solo" in usernames(app)          # read on another connection: it is committed


def test_many_threads_each_get_their_own_results_whatever_batches_they_land_in(app):
    """40 threads × 20 jobs, queued while other batches commit: every job is run once and every caller
    gets its own job's result (a job left out of every batch would come back as None)."""
    results = {}

    def call(thread):
        for turn in range(20):
            results[thread, turn] = group_commit.run(app, lambda batch, value=(thread, turn): value)
    threads = [threading.Thread(target=call, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {(i, turn): (i, turn) for i in range(40) for turn in range(20)}


def joining_while_the_leader_yields(app, monkeypatch, arrivals):
    """The leader's job ("lead") with `arrivals[i]` more jobs joining the queue during its i-th yield (then
    none); returns each job's Batch by name and how many times the leader yielded."""
    committer, batches, joined, yields = app.extensions["group_commit"], {}, [], []

    def run(name):
        batches[name] = group_commit.run(app, add_user(name))

    def a_yield():
        for _ in range(arrivals[len(yields)] if len(yields) < len(arrivals) else 0):
            queued = len(committer._queue)
            joined.append(threading.Thread(target=run, args=(f"joined{len(joined)}",)))
            joined[-1].start()
            deadline = time.monotonic() + 5
            while len(committer._queue) == queued:      # it queues behind the leader, who holds the lock
                assert time.monotonic() < deadline, "a joining job never queued"
                time.sleep(0.001)
        yields.append(True)
    monkeypatch.setattr(group_commit, "_yield", a_yield)
    run("lead")
    for thread in joined:
        thread.join(10)
    return batches, len(yields)


def test_a_leader_yields_until_no_more_jobs_join_and_takes_them_all(app, monkeypatch):
    batches, yields = joining_while_the_leader_yields(app, monkeypatch, [2, 1])
    assert yields == 3                      # two that brought jobs, one that brought none
    assert len(batches) == 4 and len({id(batch) for batch in batches.values()}) == 1, "one transaction"
    assert {"lead", "joined0", "joined1", "joined2"} <= usernames(app)


def test_a_leader_stops_yielding_after_most_yields_however_fast_jobs_join(app, monkeypatch):
    batches, yields = joining_while_the_leader_yields(app, monkeypatch, [1] * 10)
    assert yields == group_commit.MOST_YIELDS
    assert len({id(batch) for batch in batches.values()}) == 1 and len(batches) == group_commit.MOST_YIELDS + 1


def test_a_lone_job_is_led_after_one_yield(app, monkeypatch):
    batches, yields = joining_while_the_leader_yields(app, monkeypatch, [])
    assert (yields, list(batches)) == (1, ["lead"])

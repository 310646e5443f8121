"""The soak's upstream: the tests' FakeUpstream (OpenAI wire format) with random faults.

`python bench/soak/upstream.py PORT FAULT_RATE SEED` serves until SIGTERM, then prints how many
answers of each kind it gave. A fraction FAULT_RATE of
chat calls gets one of the faults below instead of a healthy answer; besides those, one stream in
ten is paced (0.1 s between chunks) so some streams stay open for a while, as real ones do.
"""
import collections
import json
import os
import random
import signal
import sys
import threading
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))

from fake_upstream import FakeUpstream, Fault, _handler_for  # noqa: E402

# (fault, weight): 5xx, a 429 that names its wait, a reset, a slow answer, a late first token,
# and a stream cut after two chunks (a non-stream call with `cut` gets a reset).
FAULTS = [
    (Fault.status(500), 2), (Fault.status(503), 2), (Fault.status(429, "rate limited", retry_after=1), 2),
    (Fault.reset(), 2), (Fault.slow(2.0), 1), (Fault.ttft(1.0), 1), (Fault.cut(2), 3),
]
PACED = Fault.paced(0.1)


class RandomFaultUpstream(FakeUpstream):
    """Faults drawn at random per request instead of scripted; keeps only the last requests."""

    def __init__(self, fault_rate, seed):
        super().__init__()
        self.requests = collections.deque(maxlen=200)      # a soak must not grow its own memory
        self.fault_rate = fault_rate
        self.random = random.Random(seed)
        self.choices, self.weights = zip(*FAULTS)
        self.counts = collections.Counter()
        self.random_lock = threading.Lock()

    def _fault_for(self, record):
        with self.random_lock:
            roll = self.random.random()
            fault = self.random.choices(self.choices, self.weights)[0] if roll < self.fault_rate else None
            if fault is None and record.stream and self.random.random() < 0.1:
                fault = PACED
        self.counts[fault.kind if fault else "healthy"] += 1
        return fault


class QuietServer(ThreadingHTTPServer):
    """Counts, rather than prints, the resets a client causes by hanging up on a kept-alive connection."""
    daemon_threads = True
    hangups = 0

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            self.hangups += 1
        else:
            super().handle_error(request, client_address)


def main():
    port, fault_rate, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    upstream = RandomFaultUpstream(fault_rate, seed)
    upstream.reply_text = "The soak's fake upstream answers with a sentence of modest length."
    upstream.chunks = 8
    server = QuietServer(("127.0.0.1", port), _handler_for(upstream))
    print(f"soak upstream on 127.0.0.1:{port}, fault rate {fault_rate}", flush=True)

    def report_and_exit(*_):
        print("answers by kind: " + json.dumps(dict(upstream.counts)), flush=True)
        print(f"connections the gateway reset or closed mid-request: {server.hangups}", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, report_and_exit)
    server.serve_forever()


if __name__ == "__main__":
    main()

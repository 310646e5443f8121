"""What counting an API request's three rate limits (key, user, global) costs, on each storage.

    python bench/ratelimits.py [--redis redis://127.0.0.1:6379/0] [--n 5000]

Each round is one `RateLimits.hit` of a fresh key's, user's and global limit, as authenticate()
does; the limits are set high so every round is counted (the usual case).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gateway.config import LimitSettings  # noqa: E402
from gateway.ratelimits import RateLimits  # noqa: E402

SETTINGS = LimitSettings(user_per_minute=1_000_000, global_per_hour=1_000_000, key_per_minute=1_000_000)


def measure(rate_limits, rounds):
    """Microseconds per request: median and 99th percentile over `rounds` requests from 50 users."""
    times = []
    for i in range(rounds):
        items = rate_limits.for_key(user_id=i % 50, key_id=i % 100)
        start = time.perf_counter()
        window = rate_limits.hit(items)
        times.append((time.perf_counter() - start) * 1e6)
        assert window.allowed
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        storages = {"memory": RateLimits(SETTINGS),
                    "instance file": RateLimits(SETTINGS, path=os.path.join(folder, "bench.limits"))}
        if args.redis:
            storages["redis"] = RateLimits(SETTINGS, redis_url=args.redis)
        for name, rate_limits in storages.items():
            median, p99 = measure(rate_limits, args.n)
            print(f"{name:14} median {median:8.1f} µs   p99 {p99:8.1f} µs   per request (3 limits)")


if __name__ == "__main__":
    main()

"""Password hashing off the gevent loop, and the same work whether or not an account exists.

scrypt holds a CPU for tens of milliseconds; run on the loop, a burst of registrations or logins
would stall every other request of the worker. Under gevent it runs in the hub's thread pool
(hashlib releases the GIL while hashing), so the other greenlets keep being served.
"""
import functools
import secrets
import sys

from werkzeug.security import check_password_hash, generate_password_hash


def hash_password(password):
    """A salted scrypt hash (werkzeug's default scheme)."""
    return _off_loop(generate_password_hash, password)


def verify(password_hash, password):
    """True when `password` matches; `password_hash` None (no such account) costs the same and is False."""
    if password_hash is None:
        _off_loop(check_password_hash, _dummy_hash(), password)
        return False
    return _off_loop(check_password_hash, password_hash, password)


@functools.cache
def _dummy_hash():
    """A hash made like real ones (same scheme and cost) that no password matches."""
    return generate_password_hash(secrets.token_urlsafe(32))


def _off_loop(fn, *args):
    """Run `fn` in gevent's thread pool when gevent has patched threading, else right here."""
    monkey = sys.modules.get("gevent.monkey")         # not imported: gevent is not in use
    if monkey is not None and monkey.is_module_patched("threading"):
        import gevent
        return gevent.get_hub().threadpool.apply(fn, args)
    return fn(*args)

"""gunicorn settings for the soak only: the product's gunicorn.conf.py plus a probe in each worker.

What a worker holds inside (greenlets, the database pool) cannot be read from /proc, so each
worker writes it to `$SOAK_PROBE_DIR/worker-<pid>.json` every `$SOAK_PROBE_S` seconds. The probe
lives here, not in the product: `gunicorn -c bench/soak/probe.conf.py wsgi:app`.
"""
import os
import runpy

_PRODUCT_CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gunicorn.conf.py")
globals().update({name: value for name, value in runpy.run_path(_PRODUCT_CONF).items()
                  if not name.startswith("_")})
_product_post_worker_init = globals().get("post_worker_init")


def post_worker_init(worker):
    """The product's own hook first, then one greenlet that snapshots this worker's insides."""
    if _product_post_worker_init is not None:
        _product_post_worker_init(worker)
    import gc
    import json
    import threading
    import time

    import gevent
    import greenlet
    import sqlalchemy as sa

    from extensions import db

    out_dir, every = os.environ["SOAK_PROBE_DIR"], float(os.environ.get("SOAK_PROBE_S", "15"))
    with worker.wsgi.app_context():             # worker.wsgi is the Flask app that wsgi.py built
        engine = db.engine
    peak = {"checked_out": 0}

    def on_checkout(*_):
        peak["checked_out"] = max(peak["checked_out"], engine.pool.checkedout())

    sa.event.listen(engine, "checkout", on_checkout)
    path = os.path.join(out_dir, f"worker-{os.getpid()}.json")

    def snapshot():
        started = time.perf_counter()
        objects = gc.get_objects()
        greenlets = [o for o in objects if isinstance(o, greenlet.greenlet)]
        alive = [g for g in greenlets if not g.dead]
        pool = engine.pool
        record = {"pid": os.getpid(), "time": time.time(), "greenlets": len(greenlets), "greenlets_alive": len(alive),
                  "greenlet_places": where(alive),
                  "threads": threading.active_count(), "gc_objects": len(objects),
                  "pool_size": pool.size(), "pool_checked_out": pool.checkedout(),
                  "pool_checked_in": pool.checkedin(), "pool_overflow": pool.overflow(),
                  "pool_peak_checked_out": peak["checked_out"]}
        del objects, greenlets, alive
        record["probe_ms"] = round((time.perf_counter() - started) * 1000, 1)
        peak["checked_out"] = pool.checkedout()
        with open(path + ".tmp", "w") as fh:
            json.dump(record, fh)
        os.replace(path + ".tmp", path)

    def where(alive):
        """What the live greenlets are doing: the innermost frame outside gevent and greenlet, counted."""
        places = {}
        for g in alive:
            frame, place = g.gr_frame, type(g).__name__
            while frame is not None:
                name = frame.f_code.co_filename
                if "/gevent/" not in name and "/greenlet/" not in name:
                    place = f"{os.path.basename(name)}:{frame.f_code.co_name}"
                    break
                frame = frame.f_back
            places[place] = places.get(place, 0) + 1
        return dict(sorted(places.items(), key=lambda item: -item[1])[:12])

    def probe_forever():
        while True:
            try:
                snapshot()
            except Exception:                     # a probe must never take the worker down
                worker.log.exception("soak probe failed")
            gevent.sleep(every)

    gevent.spawn(probe_forever)

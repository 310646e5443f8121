"""The production entry point: `gunicorn wsgi:app` (gunicorn.conf.py picks gevent workers).

gevent patches the standard library before anything imports `ssl` or opens a socket; under
`flask run` or plain imports in tests the patch is skipped.
"""
import os

if not os.environ.get("FLASK_RUN_FROM_CLI") and os.environ.get("GATEWAY_NO_GEVENT") != "1":
    from gevent import monkey

    monkey.patch_all()

from app import create_app, start_sweeper  # noqa: E402

app = create_app()
start_sweeper(app)

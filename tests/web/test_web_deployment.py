"""Deployment switches: trusted proxy hops, the HTTPS-only session cookie, a private instance folder."""
import stat

from flask import request
from werkzeug.middleware.proxy_fix import ProxyFix

from app import create_app

PROXY_HEADERS = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "gw.example"}


def whoami(app):
    """What the app believes about the client of a request carrying forwarded headers."""
    app.add_url_rule("/test-whoami", "test_whoami", lambda: f"{request.remote_addr} {request.scheme} {request.host}")
    return app.test_client().get("/test-whoami", headers=PROXY_HEADERS).get_data(as_text=True)


def test_forwarded_headers_are_ignored_by_default(make_app):
    """TRUSTED_PROXIES=0: the TCP peer is the client, whatever X-Forwarded-* say."""
    assert whoami(make_app()) == "127.0.0.1 http localhost"


def test_forwarded_headers_are_believed_for_trusted_hops(make_app):
    assert whoami(make_app(TRUSTED_PROXIES=1)) == "203.0.113.9 https gw.example"


def test_secure_session_cookie(make_app):
    """SESSION_COOKIE_SECURE=True marks the session cookie Secure (off by default, for plain-http setups)."""
    secure = make_app(SESSION_COOKIE_SECURE=True).test_client().get("/register").headers["Set-Cookie"]
    plain = make_app().test_client().get("/register").headers["Set-Cookie"]
    assert secure.startswith("session=") and "Secure" in secure
    assert plain.startswith("session=") and "Secure" not in plain


def test_environment_settings_and_private_instance_folder(tmp_path, monkeypatch):
    """A served app reads SESSION_COOKIE_SECURE and TRUSTED_PROXIES from the environment, takes group
    and world access off instance/ and writes its generated secrets 0600."""
    instance = tmp_path / "instance"
    instance.mkdir()
    instance.chmod(0o755)
    for name in ("SECRET_KEY", "GATEWAY_ENCRYPTION_KEYS", "JWT_SECRET", "REDIS_URL", "GATEWAY_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATEWAY_INSTANCE_PATH", str(instance))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'gateway.sqlite'}")
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "1")
    monkeypatch.setenv("TRUSTED_PROXIES", "2")
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True and app.config["TRUSTED_PROXIES"] == 2
    assert isinstance(app.wsgi_app, ProxyFix) and app.wsgi_app.x_for == app.wsgi_app.x_proto == 2
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    assert stat.S_IMODE((instance / "config.py").stat().st_mode) == 0o600


def test_new_instance_folder_is_private(tmp_path, monkeypatch):
    instance = tmp_path / "fresh" / "instance"
    monkeypatch.setenv("GATEWAY_INSTANCE_PATH", str(instance))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'gateway.sqlite'}")
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    create_app()
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700

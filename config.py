"""Application defaults; secrets come from the environment or are generated into instance/."""
import os


class Config:
    """Safe defaults. `create_app` layers instance/config.py, the environment and test overrides on top."""

    SQLALCHEMY_ENGINE_OPTIONS = {}                # create_app adds pool_pre_ping for server databases
    MAX_CONTENT_LENGTH = 20 * 1024 * 1024        # images travel base64 in chat bodies
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    GATEWAY_ENCRYPTION_KEYS = None               # Fernet keys, newest first; generated into instance/ when unset
    REDIS_URL = None                             # shares breakers and key health with every instance
    HEALTH_STATE_FILE = None                     # without Redis, the file this instance's workers share them in
    JWT_SECRET = None
    GATEWAY_CONFIG = None                        # defaults to instance/gateway.toml
    GATEWAY_SETTINGS = None                      # tests may pass parsed settings directly
    CREDITS_PER_REQUEST = 1                      # seed 003: POST /api/v1/chat
    CREDITS_PER_BATCH_REQUEST = 2                # seed 003: POST /api/v1/chat?batch=1
    LOGIN_RATE_LIMIT = "10 per minute"           # POST /login per client address
    REGISTER_RATE_LIMIT = "10 per hour"          # POST /register per client address: a sign-up burst, not a bot farm
    SESSION_COOKIE_SECURE = False                # SESSION_COOKIE_SECURE=1 when users reach the gateway over HTTPS
    TRUSTED_PROXIES = 0                          # reverse-proxy hops whose X-Forwarded-* are believed; 0: none
    RESERVATION_SWEEP_S = 300                    # a reservation older than this was left by a dead worker
    METRICS_TOKEN = None                         # a bearer token that may read /metrics (Prometheus' scraper)


def ensure_instance_secrets(instance_path):
    """Write SECRET_KEY and GATEWAY_ENCRYPTION_KEYS into instance/config.py once, mode 0600, in a 0700 instance/."""
    import secrets

    from cryptography.fernet import Fernet

    _private_directory(instance_path)
    path = os.path.join(instance_path, "config.py")
    if os.path.exists(path):
        return path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:          # another worker won the race
        return path
    with os.fdopen(fd, "w") as fh:
        fh.write("# Generated on first run. Keep this file private and backed up.\n")
        fh.write(f"SECRET_KEY = {secrets.token_urlsafe(48)!r}\n")
        fh.write(f"GATEWAY_ENCRYPTION_KEYS = {Fernet.generate_key().decode()!r}\n")
    return path


def _private_directory(path):
    """Create `path` 0700, or take group and world access off an existing one (it holds the secrets and the database)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.stat(path).st_mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except PermissionError:      # owned by someone else: the operator's choice, left alone
            pass

"""/admin: what only administrators see; every view here answers 403 to anyone else."""
from flask import Blueprint, abort, redirect, url_for
from flask_login import current_user, login_required

from blueprints.web.security import protect

bp = protect(Blueprint("admin", __name__, url_prefix="/admin"))


@bp.before_request
@login_required
def require_admin():
    """:raise 403: a signed-in user who is not an administrator."""
    if not current_user.is_admin:
        abort(403)


@bp.get("")
def index():
    return redirect(url_for("admin.users"))


from blueprints.web.admin import activity, codes, requests, upstreams, users  # noqa: E402,F401  (their views join `bp`)

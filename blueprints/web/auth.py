"""Web accounts: register, log in (throttled, session rotated), log out (POST only)."""
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from htmx_flask import make_response as htmx_response

from blueprints.web.security import protect
from extensions import db, login_manager
from models import User, login_session, passwords

bp = protect(Blueprint("auth", __name__))
MIN_PASSWORD = 8
SESSION_TOKEN = "login"


def init_login_manager(app):
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    login_manager.user_loader(_load_user)
    login_manager.unauthorized_handler(_unauthorized)


def _load_user(user_id):
    """The session's user, only while its login is live on the server (logout ends it everywhere it was copied)."""
    if not user_id.isdigit() or not login_session.is_live(session.get(SESSION_TOKEN), int(user_id)):
        return None
    return db.session.get(User, int(user_id))


def _sign_in(user):
    """A fresh session (a planted cookie cannot ride into the login) tied to a new server-side login."""
    session.clear()
    login_user(user)
    session[SESSION_TOKEN] = login_session.start(user.id)
    db.session.commit()


def _unauthorized():
    """JSON 401 for /api, a client-side redirect for htmx, else the login page."""
    if request.path.startswith("/api/"):
        return jsonify({"detail": "Log in first.", "code": 401, "error_type": "not_authenticated"}), 401
    target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
    if request.htmx:
        return htmx_response("", 401, redirect=target)
    flash("Please log in to see that page.", "info")
    return redirect(target)


@bp.route("/register", methods=["GET", "POST"])
def register():
    if current_user.is_authenticated:
        return redirect(url_for("chat.index"))
    error = None
    username = request.form.get("username", "").strip()
    if request.method == "POST":
        error = _registration_error(username, request.form.get("password", ""), request.form.get("confirm", ""))
        if error is None:
            user = _create_account(username, request.form["password"])
            _sign_in(user)
            flash(f"Welcome, {user.username}! Create an API key or start a chat."
                  + (" You are the administrator of this gateway." if user.is_admin else
                     " This is a user account: an administrator can grant you credits or make you an administrator."),
                  "success")
            return redirect(url_for("keys.index"))
    return render_template("auth/register.html", error=error, username=username,
                           first_account=_no_account_yet()), 422 if error else 200


def _registration_error(username, password, confirm):
    if not 3 <= len(username) <= 64 or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
        return "Choose a username of 3–64 letters, digits, '.', '-' or '_'."
    if len(password) < MIN_PASSWORD:
        return f"Choose a password of at least {MIN_PASSWORD} characters."
    if password != confirm:
        return "The two passwords differ."
    if db.session.scalar(sa.select(User.id).where(User.username == username)) is not None:
        return "That username is taken."
    return None


def _no_account_yet():
    """True on a brand-new gateway, the only time registering makes an administrator (see _create_account)."""
    return db.session.scalar(sa.select(User.id).limit(1)) is None


def _create_account(username, password):
    """Insert the account; the lowest id becomes admin while no admin exists (race-safe: one UPDATE)."""
    user = User(username=username, role="user")
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    first_id = sa.select(sa.func.min(User.id)).scalar_subquery()
    no_admin = ~sa.exists().where(User.role == "admin")
    db.session.execute(sa.update(User).where(User.id == user.id, User.id == first_id, no_admin).values(role="admin"))
    db.session.commit()
    db.session.refresh(user)
    return user


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(url_for("chat.index"))
    error = None
    username = request.form.get("username", "").strip()
    if request.method == "POST":
        user = db.session.scalar(sa.select(User).where(User.username == username))
        # An unknown name is checked against a dummy hash: the answer takes as long as for a real account.
        matches = passwords.verify(user.password_hash if user else None, request.form.get("password", ""))
        if user is None or not matches:
            error = "Wrong username or password."
        elif not user.is_active:
            error = "This account is disabled; ask an administrator."
        else:
            _sign_in(user)
            return redirect(_safe_next(request.args.get("next")) or url_for("chat.index"))
    return render_template("auth/login.html", error=error, username=username,
                           first_account=_no_account_yet()), 401 if error else 200


@bp.post("/logout")
@login_required
def logout():
    login_session.end(session.get(SESSION_TOKEN))
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


def _safe_next(target):
    """Only same-site paths are followed after login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None

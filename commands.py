"""The command-line contract of SPEC section 9: `flask --app app users|keys ...`."""
import click
from flask import current_app
from flask.cli import AppGroup

import dbmigrate
from extensions import db
from gateway import pricing
from models import ApiKey, RedemptionCode, User, UserProviderKey, credit, redemption, retention
from models.api_key import MAX_RPM
from models.redemption import PACKAGES

users_cli = AppGroup("users", help="Manage accounts.")
keys_cli = AppGroup("keys", help="Manage gateway API keys.")
credits_cli = AppGroup("credits", help="Manage credit balances.")
provider_keys_cli = AppGroup("provider-keys", help="Manage users' stored provider keys.")
logs_cli = AppGroup("logs", help="Manage request and activity logs.")


@users_cli.command("create")
@click.argument("name")
@click.option("--password", required=True, help="Initial password.")
@click.option("--admin", is_flag=True, help="Make the account an administrator.")
@click.option("--email", default=None)
def create_user(name, password, admin, email):
    """Create an account (the very first account is always an admin)."""
    if db.session.scalar(db.select(User).filter_by(username=name)):
        raise click.ClickException(f"user {name!r} already exists")
    if len(password) < 8:
        raise click.ClickException("the password must have at least 8 characters")
    first = db.session.scalar(db.select(db.func.count(User.id))) == 0
    user = User(username=name, email=email, role="admin" if admin or first else "user")
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"created {user.role} {name}")


@keys_cli.command("create")
@click.option("--user", "username", required=True)
@click.option("--name", default="default")
@click.option("--rpm", type=click.IntRange(min=1, max=MAX_RPM), default=None,
              help="The key's own requests-per-minute limit (default: [limits] key_per_minute).")
def create_key(username, name, rpm):
    """Issue a key; the key alone is printed on the last line and never shown again."""
    user = db.session.scalar(db.select(User).filter_by(username=username))
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    row, raw = ApiKey.issue(user, name)
    row.rpm = rpm
    db.session.commit()
    click.echo(f"key {name!r} for {username} (store it now: it is not kept):")
    click.echo(raw)


@credits_cli.command("grant")
@click.option("--user", "username", required=True)
@click.option("--amount", required=True, type=click.FloatRange(min=-1_000_000, max=1_000_000),
              help="Credits (1 credit = 1 USD); negative to take credit back.")
@click.option("--note", default="granted from the command line")
def grant_credits(username, amount, note):
    """Add credit to an account: one ledger row; the new balance is printed."""
    user = db.session.scalar(db.select(User).filter_by(username=username))
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    try:
        micro = pricing.from_credits(amount)       # click's FloatRange lets nan through
    except ValueError as exc:
        raise click.ClickException(f"--amount: {exc}") from None
    if micro == 0:
        raise click.ClickException("--amount must not be zero (a negative amount takes credit back)")
    try:
        balance = credit.grant(user.id, micro, description=note)
    except credit.InsufficientCredit as exc:
        raise click.ClickException(f"cannot take back more than the available {pricing.to_credits(exc.available)}")
    db.session.commit()
    click.echo(f"{username}: balance {pricing.to_credits(balance)} credits")


@credits_cli.command("codes")
@click.option("--amount", type=click.FloatRange(min=0.01, max=1_000_000), help="Credits per code.")
@click.option("--package", type=click.Choice(sorted(PACKAGES, key=float)),
              help="A seed-003 package by its USD price (bonus included) instead of --amount.")
@click.option("--count", default=1, type=click.IntRange(1, 10_000))
@click.option("--batch", default="", help="A label to find the batch later.")
def create_codes(amount, package, count, batch):
    """Create redemption codes; each code is printed once, one per line, and only its hash is kept."""
    try:
        micro_each = redemption.code_value(amount, package)
    except ValueError as exc:
        raise click.ClickException(f"{exc} (--amount or --package)")
    raws = RedemptionCode.create_batch(micro_each, count, redemption.batch_label(batch, package))
    db.session.commit()
    click.echo("\n".join(raws))


@credits_cli.command("sweep")
@click.option("--older-than", default=None, type=click.IntRange(min=0), help="Seconds (default RESERVATION_SWEEP_S).")
def sweep_reservations(older_than):
    """Release credit held by requests whose worker died before settling them."""
    seconds = older_than if older_than is not None else current_app.config["RESERVATION_SWEEP_S"]
    click.echo(f"released {credit.sweep(seconds)} stale reservation(s)")


@provider_keys_cli.command("rotate")
def rotate_provider_keys():
    """Re-encrypt every stored provider key with the first GATEWAY_ENCRYPTION_KEYS key (then drop the old one)."""
    vault = current_app.extensions["vault"]
    rows = db.session.scalars(db.select(UserProviderKey)).all()
    for row in rows:
        row.ciphertext = vault.rotate(row.ciphertext)
    db.session.commit()
    click.echo(f"re-encrypted {len(rows)} provider key(s) with the newest key")


@logs_cli.command("prune")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
def prune_logs(dry_run):
    """Delete log rows older than the [retention] days (workers also do it once an hour)."""
    settings = current_app.extensions["gateway"].settings.retention
    counts = retention.count(settings) if dry_run else retention.prune(settings)
    verb = "would delete" if dry_run else "deleted"
    click.echo(", ".join(f"{verb} {n} {table}" for table, n in counts.items()) or "every log is kept for ever")


def init_app(app):
    """The `flask` subcommands; `flask db` (Flask-Migrate) only when the app is made by the `flask` command,
    so that a worker serving requests never loads Alembic."""
    if click.get_current_context(silent=True) is not None:
        dbmigrate.init_app(app, db)
    app.cli.add_command(users_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(credits_cli)
    app.cli.add_command(provider_keys_cli)
    app.cli.add_command(logs_cli)

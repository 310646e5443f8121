"""Parse and validate the key form's fields (name, expiry, requests per minute, model and IP allow-lists).

The API enforces these limits (blueprints/api/auth.py); this module only makes sure what is
stored is well formed, so a typo can never lock a key out or, worse, silently allow everything.
"""
import ipaddress
import re
from datetime import datetime, timedelta

from models.api_key import MAX_RPM
from models.user import utcnow

MAX_NAME = 100
MAX_LIST = 50


class FormError(ValueError):
    """A message for the user, naming the field."""


def key_name(raw):
    name = (raw or "").strip()
    if not name:
        return "default"
    if len(name) > MAX_NAME:
        raise FormError(f"The name may have at most {MAX_NAME} characters.")
    return name


def expiry(raw):
    """A `YYYY-MM-DD` (UTC) date the key is valid through, or None for no expiry.

    :raise FormError: unparseable or already past.
    """
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d")
    except ValueError:
        raise FormError("Expiry must be a date (YYYY-MM-DD).") from None
    ends = day + timedelta(days=1)          # valid through the whole chosen day
    if ends <= utcnow():
        raise FormError("Expiry must be today or later; to stop a key now, disable or revoke it.")
    return ends


def expiry_value(expires_at):
    """The form value for a stored expiry (the last day the key works)."""
    return (expires_at - timedelta(days=1)).strftime("%Y-%m-%d") if expires_at else ""


def editor_values(key, form=None):
    """What the key editor shows: the submitted fields after a refused save (so nothing typed or ticked
    is lost), else the stored key's."""
    if form is not None:
        return {"name": form.get("name", ""), "expires_on": form.get("expires_on", ""), "rpm": form.get("rpm", ""),
                "models": form.getlist("models"), "allow_ips": form.get("allow_ips", "")}
    return {"name": key.name, "expires_on": expiry_value(key.expires_at), "rpm": key.rpm or "",
            "models": key.model_limits or [], "allow_ips": "\n".join(key.allow_ips or [])}


def rpm(raw):
    """The key's own requests per minute, or None for the gateway's default.

    :raise FormError: not a whole number from 1 to MAX_RPM.
    """
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RPM:
        raise FormError(f"Requests per minute must be a whole number from 1 to {MAX_RPM:,}, or empty for the default.")
    return int(raw)


def model_limits(values, known):
    """The chosen model ids, all of them from the catalog; an empty list allows every model."""
    chosen = list(dict.fromkeys(v.strip() for v in values if v.strip()))
    unknown = [m for m in chosen if m not in known]
    if unknown:
        raise FormError(f"Unknown model: {', '.join(unknown[:3])}.")
    if len(chosen) > MAX_LIST:
        raise FormError(f"At most {MAX_LIST} models.")
    return chosen


def allow_ips(raw):
    """Addresses or CIDR networks, separated by commas, spaces or lines; stored normalised.

    :raise FormError: naming the first entry that is neither.
    """
    entries = [e for e in re.split(r"[\s,]+", raw or "") if e]
    networks = []
    for entry in entries:
        try:
            networks.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise FormError(f"'{entry[:60]}' is not an IP address or CIDR network.") from None
    if len(networks) > MAX_LIST:
        raise FormError(f"At most {MAX_LIST} addresses or networks.")
    return list(dict.fromkeys(networks))

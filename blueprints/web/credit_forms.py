"""Parse the credit forms' fields (redeem code, admin grant, code batch) into model arguments.

Amounts go through the same helpers as the CLI (`pricing.from_credits`, `redemption.code_value`),
so a typed "0.1" means exactly what `flask credits grant --amount 0.1` means.
"""
from blueprints.web.key_forms import FormError
from gateway import pricing
from models import redemption

MAX_GRANT_CREDITS = 1_000_000
MAX_CODE_LENGTH = 100
MAX_BATCH = 1000


def code(raw):
    """The pasted code, trimmed. :raise FormError: empty or far too long to be a code."""
    value = (raw or "").strip()
    if not value:
        raise FormError("Paste a redemption code first.")
    if len(value) > MAX_CODE_LENGTH:
        raise FormError("That is not a redemption code (codes look like gw-…).")
    return value


def grant_amount(raw):
    """Micro-USD to grant (negative takes credit back). :raise FormError: not a number, zero or too large."""
    try:
        micro = pricing.from_credits(raw)
    except ValueError:
        raise FormError(f"The amount must be a number of credits from -{MAX_GRANT_CREDITS:,} to "
                        f"{MAX_GRANT_CREDITS:,}, e.g. 10 or -2.5.") from None
    if micro == 0:
        raise FormError("The amount must not be zero (use a negative amount to take credit back).")
    if abs(micro) > pricing.from_credits(MAX_GRANT_CREDITS):
        raise FormError(f"At most {MAX_GRANT_CREDITS:,} credits at a time.")
    return micro


def code_batch(form):
    """(micro-USD per code, count, label) from the admin's batch form.

    :raise FormError: naming the field that is wrong.
    """
    package = (form.get("package") or "").strip() or None
    amount = (form.get("amount") or "").strip() or None
    if (amount is None) == (package is None):
        raise FormError("Choose a package or type an amount per code, not both." if package
                        else "Choose a package or type an amount per code.")
    try:
        micro = redemption.code_value(amount, package)
    except ValueError:
        raise FormError("Choose one of the listed packages." if package else
                        f"The amount per code must be a number between {redemption.MIN_CODE_CREDITS} and "
                        f"{redemption.MAX_CODE_CREDITS:,} credits.") from None
    try:
        count = int((form.get("count") or "1").strip())
    except ValueError:
        raise FormError("The count must be a whole number.") from None
    if not 1 <= count <= MAX_BATCH:
        raise FormError(f"Create between 1 and {MAX_BATCH} codes at a time.")
    return micro, count, redemption.batch_label(form.get("batch"), package)


"""Prices in integer micro-USD: money is never a float once it leaves the configuration.

A price per million tokens in USD is exactly the price of one token in micro-USD, so
`tokens × input_per_mtok` is already micro-USD; we round up once per request.
"""
import math
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

MICRO_PER_USD = 1_000_000
QUOTA_PER_USD = 500_000          # seed 000/002 "quota" units
DEFAULT_RESERVED_COMPLETION = 4096
MAX_CREDITS = 10**9              # no amount of money the gateway handles comes near; keeps micro-USD in a BigInteger


def cost(model, prompt_tokens, completion_tokens, ratio=1.0):
    """Micro-USD for a served request at `model`'s prices times the key group's ratio."""
    raw = (prompt_tokens * model.input_per_mtok + completion_tokens * model.output_per_mtok
           + model.per_request * MICRO_PER_USD)
    return math.ceil(raw * ratio - 1e-9) if raw > 0 else 0


def worst_case(models, prompt_tokens, completion_tokens, ratio=1.0):
    """The reservation: the dearest candidate at the prompt's bound plus every allowed output token."""
    return max((cost(m, prompt_tokens, completion_tokens, ratio) for m in models), default=0)


def completion_limit(body):
    """The most output tokens a chat request may produce: the client's limit, else the default one."""
    return body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_RESERVED_COMPLETION


def with_completion_limit(body):
    """The chat body to route: one without a limit gets the default one, so that what is held is
    what the upstream is told it may produce (each family sends it in its own field)."""
    if body.get("max_completion_tokens") or body.get("max_tokens"):
        return body
    return {**body, "max_completion_tokens": DEFAULT_RESERVED_COMPLETION}


def to_quota(micro):
    """Micro-USD to seed-002 quota units (500,000 = 1 USD)."""
    return micro * QUOTA_PER_USD // MICRO_PER_USD


def from_quota(quota):
    return quota * MICRO_PER_USD // QUOTA_PER_USD


def to_credits(micro):
    """Micro-USD as display credits (1 credit = 1 USD)."""
    return round(micro / MICRO_PER_USD, 6)


def from_credits(value):
    """Display credits (a number or its text) to integer micro-USD, rounded to the nearest micro-USD.

    Goes through Decimal so "0.1" is exactly 100,000 micro-USD, never 99,999 by float error.

    :raise ValueError: not a finite number, or more than MAX_CREDITS either way.
    """
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{str(value)[:40]!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError("the amount must be a finite number")
    if abs(amount) > MAX_CREDITS:            # before multiplying: 1e999999 × 10^6 overflows Decimal itself
        raise ValueError(f"the amount must be between -{MAX_CREDITS:,} and {MAX_CREDITS:,} credits")
    return int((amount * MICRO_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def format_credits(micro, exact=False):
    """Micro-USD as credits, never in scientific notation: the one money format of pages and headers.

    For people: 2 decimals with thousands separators ("1,234.50", "9.99"); an amount below a cent
    keeps the digits that make it non-zero ("0.0042", "0.000018") instead of showing as "0.00".
    `exact=True` is for headers that clients add up against the ledger: every micro-USD kept, the
    same 2-decimal minimum and no separators ("12.490401", "0.01").
    """
    micro = micro or 0
    sign = "-" if micro < 0 else ""
    whole, fraction = divmod(abs(micro), MICRO_PER_USD)
    if not exact and whole + fraction // 10_000 > 0:
        cents = (abs(micro) + 5_000) // 10_000          # half up, to the cent
        return f"{sign}{cents // 100:,}.{cents % 100:02d}"
    decimals = f"{fraction:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}{whole}.{decimals}" if exact else f"{sign}{whole:,}.{decimals}"

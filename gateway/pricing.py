"""Prices in integer micro-USD: money is never a float once it leaves the configuration.

A price per million tokens in USD is exactly the price of one token in micro-USD, so
`tokens × input_per_mtok` is already micro-USD; we round up once per request.
"""
import math
from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

MICRO_PER_USD = 1_000_000
QUOTA_PER_USD = 500_000          # seed 000/002 "quota" units
DEFAULT_RESERVED_COMPLETION = 4096
MAX_CREDITS = 10**9              # no amount of money the gateway handles comes near; keeps micro-USD in a BigInteger


def cost(model, prompt_tokens, completion_tokens, ratio=1.0, images=0):
    """Micro-USD for a served request at `model`'s prices times the key group's ratio (no cache, no reasoning split)."""
    return priced(model, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "images": images},
                  ratio)[0]


def priced(model, usage, ratio=1.0):
    """(micro-USD, cost of each part) for an OpenAI-shaped usage: uncached input, cache reads and writes
    at their own prices, output, and reasoning (part of the output) at the output price, and generated
    `images` (gateway.passthrough); rounded up once."""
    tokens = breakdown(usage)
    parts = {"input": tokens["input"] * model.input_per_mtok,
             "cache_read": tokens["cache_read"] * model.cache_read_per_mtok,
             "cache_write": tokens["cache_write"] * model.cache_write_per_mtok,
             "output": (tokens["output"] - tokens["reasoning"]) * model.output_per_mtok,
             "reasoning": tokens["reasoning"] * model.output_per_mtok,
             "request": model.per_request * MICRO_PER_USD}
    if model.per_image:
        parts["image"] = int(usage.get("images") or 0) * model.per_image * MICRO_PER_USD
    raw = sum(parts.values())
    total = math.ceil(raw * ratio - 1e-9) if raw > 0 else 0
    return total, {name: round(value * ratio) for name, value in parts.items()}


def breakdown(usage):
    """Token counts by part of a checked OpenAI-shaped usage (gateway.answers): `input` excludes the
    cached and cache-written tokens that `prompt_tokens` includes; `reasoning` is part of `output`."""
    prompt, output = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    cache_read = min(int(prompt_details.get("cached_tokens") or 0), prompt)
    cache_write = min(int(prompt_details.get("cache_write_tokens") or 0), prompt - cache_read)
    reasoning = min(int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0), output)
    return {"input": prompt - cache_read - cache_write, "cache_read": cache_read, "cache_write": cache_write,
            "output": output, "reasoning": reasoning}


def worst_case(models, prompt_tokens, completion_tokens, ratio=1.0, images=0):
    """The reservation: the dearest candidate at the prompt's bound (every input token at the dearest of
    its input, cache-read and cache-write prices) plus every allowed output token and image."""
    return max((cost(_dearest_input(m), prompt_tokens, completion_tokens, ratio, images) for m in models), default=0)


def _dearest_input(model):
    dearest = max(model.input_per_mtok, model.cache_read_per_mtok, model.cache_write_per_mtok)
    return model if dearest == model.input_per_mtok else replace(model, input_per_mtok=dearest)


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

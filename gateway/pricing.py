"""Prices in integer micro-USD: money is never a float once it leaves the configuration.

A price per million tokens in USD is exactly the price of one token in micro-USD, so
`tokens × input_per_mtok` is already micro-USD; we round up once per request.
"""
import math

MICRO_PER_USD = 1_000_000
QUOTA_PER_USD = 500_000          # seed 000/002 "quota" units
DEFAULT_RESERVED_COMPLETION = 4096


def cost(model, prompt_tokens, completion_tokens, ratio=1.0):
    """Micro-USD for a served request at `model`'s prices times the key group's ratio."""
    raw = (prompt_tokens * model.input_per_mtok + completion_tokens * model.output_per_mtok
           + model.per_request * MICRO_PER_USD)
    return math.ceil(raw * ratio - 1e-9) if raw > 0 else 0


def worst_case(models, prompt_estimate, max_tokens, ratio=1.0):
    """The reservation: the dearest candidate at the prompt estimate plus every allowed output token."""
    completion = max_tokens or DEFAULT_RESERVED_COMPLETION
    return max((cost(m, prompt_estimate, completion, ratio) for m in models), default=0)


def to_quota(micro):
    """Micro-USD to seed-002 quota units (500,000 = 1 USD)."""
    return micro * QUOTA_PER_USD // MICRO_PER_USD


def from_quota(quota):
    return quota * MICRO_PER_USD // QUOTA_PER_USD


def to_credits(micro):
    """Micro-USD as display credits (1 credit = 1 USD)."""
    return round(micro / MICRO_PER_USD, 6)

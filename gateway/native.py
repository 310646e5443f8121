"""A request's own native form, carried beside the OpenAI form every adapter reads.

A front door that is not OpenAI's chat (/v1/messages, /v1/responses) translates its request into
the OpenAI form and attaches the original under NATIVE; an adapter of the same family sends the
original whole (cache hints, thinking signatures, betas, built-in tools), the others send the OpenAI
form and report as dropped what it could not carry (`lost`) or refuse what cannot work (`refused`).
The Responses API's family is "openai", and only providers with `responses = "native"` send it whole:
the other OpenAI-compatible ones refuse like another family would (gateway.providers.openai_compat). Client bodies can never carry it:
validation.chat_request removes the key.
"""
NATIVE = "x_gateway_native"      # {"family", "body", "headers", "lost", "refused"}


def native_of(body, family):
    """The native request when it came in `family`'s wire format, else None."""
    native = body.get(NATIVE)
    return native if native and native["family"] == family else None


def lost_in_translation(body):
    """What the OpenAI form of a native request could not carry (listed as dropped for other families)."""
    native = body.get(NATIVE)
    return list(native["lost"]) if native else []

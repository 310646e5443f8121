"""The OpenAI endpoints relayed unchanged to upstreams that serve them (moderations, images, speech,
transcriptions, rerank): the catalog kind each needs, the most each may use, and what an answer used.

Usage is what `pricing.priced` reads: prompt and completion tokens, and `images`. What the upstream
reports is charged; what it does not report is charged at the bound that was held.
"""
from dataclasses import dataclass

from gateway.tokens import bound_text

KINDS = {"moderations": "moderation", "images/generations": "image", "audio/speech": "speech",
         "audio/transcriptions": "transcription", "rerank": "rerank"}
IMAGE_OUTPUT_TOKENS = 6_240      # gpt-image-1's dearest image (1536×1024, high quality), in output tokens
AUDIO_BYTES_PER_TOKEN = 64       # compressed speech takes ≥ 750 bytes a second; audio models read ≤ 10 tokens a second


@dataclass
class Relayed:
    """An upstream's answer: its JSON object (`payload`), or any other content as it came (speech audio, text)."""
    content: bytes | None
    content_type: str
    payload: dict | None = None


@dataclass(frozen=True)
class Bound:
    """The most a request may use: what is held, and what is charged when the upstream says nothing."""
    prompt_tokens: int
    completion_tokens: int = 0
    images: int = 0


def bound(endpoint, body):
    """The Bound of a checked request body (gateway.validation) for `endpoint`."""
    if endpoint == "moderations":
        items = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return Bound(sum(bound_text(i) if isinstance(i, str) else bound_text(i.get("text")) for i in items))
    if endpoint == "images/generations":
        images = body.get("n") or 1
        return Bound(bound_text(body["prompt"]), images * IMAGE_OUTPUT_TOKENS, images)
    if endpoint == "audio/speech":
        return Bound(bound_text(body["input"]) + bound_text(body.get("instructions")))
    if endpoint == "audio/transcriptions":
        audio = len(body["file"][1]) // AUDIO_BYTES_PER_TOKEN + 1
        return Bound(audio + bound_text(body.get("prompt")), audio)
    query = bound_text(body["query"])              # rerank: the query is read once with every document
    return Bound(sum(query + bound_text(d) for d in body["documents"]))


def usage(answer, held):
    """The usage to charge for a Relayed answer: the upstream's counts where it gave them, else `held`."""
    payload = answer.payload or {}
    reported = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
    prompt = _count(reported, "input_tokens", "prompt_tokens", "total_tokens")
    completion = _count(reported, "output_tokens", "completion_tokens")
    if prompt is None:
        prompt, completion = held.prompt_tokens, held.completion_tokens
    images = len(payload["data"]) if held.images and isinstance(payload.get("data"), list) else held.images
    return {"prompt_tokens": prompt, "completion_tokens": completion or 0, "images": images}


def _count(reported, *names):
    """The first of `names` that is a count in the upstream's usage, or None."""
    for name in names:
        value = reported.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None

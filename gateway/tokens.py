"""Token estimates for reservations and for streams that end before the upstream reports usage."""
import math

IMAGE_TOKENS = 765        # OpenAI's figure for one high-detail 512px tile set; a fair reservation


def estimate_text(text):
    return max(1, math.ceil(len(text) / 4)) if text else 0


def estimate_prompt(messages):
    """A generous prompt estimate: ~4 characters per token plus a little per message."""
    total = 0
    for message in messages:
        total += 4
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_text(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    total += estimate_text(part.get("text", ""))
                else:
                    total += IMAGE_TOKENS
    return total

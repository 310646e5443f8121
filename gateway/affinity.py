"""Cache affinity: requests of one conversation go to the same provider key while it is healthy, so the
upstream's prompt cache for that conversation stays warm.

No table is shared: each key is weighed by a hash of (conversation, key label) — rendezvous hashing —
and the router tries keys heaviest first, skipping those out of rotation. Every worker and instance
so picks the same key, and a key that goes out moves only its own conversations (each to its next
heaviest key), which come back when it returns.
"""
import hashlib
import json

# Claude Code's, then Codex's (newer, then older) conversation headers. gunicorn (22+) and nginx drop
# header names with an underscore by default: Codex is then known by its `prompt_cache_key`, the same id.
SESSION_HEADERS = ("X-Claude-Code-Session-Id", "session_id", "conversation_id")
MAX_ID_CHARS = 200
PREFIX_BYTES = 8192      # of the conversation's opening (system + first user message) that names it


def conversation_key(headers, body, root_response_id=None, cache_key=None):
    """What names the request's conversation: a client's session header, else its `prompt_cache_key`
    (`cache_key` when the body is a translation), else the Responses chain's first response, else the
    `user` field with a digest of how the conversation opens (the same on every turn, as a client
    resends the history)."""
    for name in SESSION_HEADERS:
        value = headers.get(name)
        if value:
            return f"session:{value[:MAX_ID_CHARS]}"
    cache_key = cache_key if cache_key is not None else body.get("prompt_cache_key")
    if isinstance(cache_key, str) and cache_key:
        return f"session:{cache_key[:MAX_ID_CHARS]}"
    if root_response_id is not None:
        return f"response:{root_response_id}"
    user = body.get("user") if isinstance(body.get("user"), str) else ""
    return f"prompt:{user[:MAX_ID_CHARS]}:{_opening_digest(body.get('messages') or ())}"


def by_affinity(keys, conversation):
    """`keys` heaviest first for `conversation` (unchanged without one): the first usable key serves it."""
    if conversation is None or len(keys) < 2:
        return list(keys)
    return sorted(keys, key=lambda key: _weight(conversation, key.id), reverse=True)


def _weight(conversation, label):
    return hashlib.blake2b(f"{conversation}\0{label}".encode("utf-8", "surrogatepass"), digest_size=8).digest()


def _opening_digest(messages):
    opening = []
    for message in messages:
        opening.append(message)
        if isinstance(message, dict) and message.get("role") not in ("system", "developer"):
            break
    text = json.dumps(opening, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass")[:PREFIX_BYTES], digest_size=12).hexdigest()

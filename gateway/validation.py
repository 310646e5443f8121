"""Validation of OpenAI-shaped request bodies: bad input is refused before any upstream call."""
from gateway.errors import BadRequest, GatewayError
from gateway.native import NATIVE
from gateway.providers.convert import EFFORT_BUDGETS

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
MAX_TOKENS_CAP = 1_000_000
MAX_IMAGES = 10                 # OpenAI's own limit of images per request
MAX_SPEECH_CHARS = 4096         # likewise for the text of one speech request
EFFORTS = set(EFFORT_BUDGETS)
_NUMBERS = {"temperature": (0, 2), "top_p": (0, 1), "presence_penalty": (-2, 2), "frequency_penalty": (-2, 2)}


def chat_request(body):
    """Check a /v1/chat/completions body; returns it unchanged when valid.

    :raise BadRequest: naming the first bad field.
    """
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    body.pop(NATIVE, None)          # only the gateway's own front doors attach a native request
    _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array of message objects.", "messages")
    for i, message in enumerate(messages):
        _message(message, f"messages[{i}]")
    _optional(body, "stream", bool)
    _optional(body, "stream_options", dict)
    for name, (low, high) in _NUMBERS.items():
        value = _optional(body, name, (int, float))
        if value is not None and not low <= value <= high:
            raise BadRequest(f"'{name}' must be between {low} and {high}.", name)
    for name in ("max_tokens", "max_completion_tokens"):
        value = _optional(body, name, int)
        if value is not None and not 1 <= value <= MAX_TOKENS_CAP:
            raise BadRequest(f"'{name}' must be between 1 and {MAX_TOKENS_CAP}.", name)
    n = _optional(body, "n", int)
    if n is not None and n != 1:
        raise BadRequest("Only n = 1 is supported: fallback across providers cannot promise several choices.", "n")
    stop = body.get("stop")
    if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))):
        raise BadRequest("'stop' must be a string or an array of strings.", "stop")
    _optional(body, "tools", list)
    _optional(body, "seed", int)
    _optional(body, "user", str)
    _optional(body, "metadata", dict)
    _optional(body, "store", bool)
    _optional(body, "parallel_tool_calls", bool)
    response_format = _optional(body, "response_format", dict)
    if response_format is not None and response_format.get("type") == "json_schema" and not isinstance(
            response_format.get("json_schema"), dict):
        raise BadRequest("'response_format.json_schema' must be an object with the schema.", "response_format")
    if body.get("reasoning_effort") is not None and body["reasoning_effort"] not in EFFORTS:
        raise BadRequest(f"'reasoning_effort' must be one of {', '.join(sorted(EFFORTS))}.", "reasoning_effort")
    models = _optional(body, "models", list)
    if models is not None and not all(isinstance(m, str) and m for m in models):
        raise BadRequest("'models' must be an array of model ids.", "models")
    return body


def embeddings_request(body):
    """Check a /v1/embeddings body."""
    _object_with_model(body)
    value = body.get("input")
    ok = _text_or_texts(value) or isinstance(value, list) and value and (
        _token_ids(value) or all(isinstance(v, list) and v and _token_ids(v) for v in value))
    if not ok:
        raise BadRequest("'input' must be a non-empty string, an array of non-empty strings, an array of token ids "
                         "or an array of non-empty token-id arrays.", "input")
    return body


def moderations_request(body):
    """Check a /v1/moderations body: text, texts, or text and image_url parts."""
    _object_with_model(body)
    value = body.get("input")
    ok = _text_or_texts(value) or isinstance(value, list) and value and all(_moderation_part(v) for v in value)
    if not ok:
        raise BadRequest("'input' must be a non-empty string, an array of non-empty strings or an array of text and "
                         "image_url parts.", "input")
    return body


def images_request(body):
    """Check a /v1/images/generations body."""
    _object_with_model(body)
    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        raise BadRequest("'prompt' must be a non-empty string.", "prompt")
    n = _optional(body, "n", int)
    if n is not None and not 1 <= n <= MAX_IMAGES:
        raise BadRequest(f"'n' must be between 1 and {MAX_IMAGES}.", "n")
    for name in ("size", "quality", "response_format", "style", "background", "moderation", "output_format", "user"):
        _optional(body, name, str)
    _optional(body, "output_compression", int)
    if body.get("stream"):
        raise BadRequest("Streamed image generation is not supported; leave 'stream' out.", "stream")
    return body


def speech_request(body):
    """Check a /v1/audio/speech body (the answer is the audio file, never a stream of events)."""
    _object_with_model(body)
    text = body.get("input")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_SPEECH_CHARS:
        raise BadRequest(f"'input' must be a non-empty string of at most {MAX_SPEECH_CHARS} characters.", "input")
    voice = body.get("voice")
    if not (isinstance(voice, str) and voice) and not (isinstance(voice, dict) and isinstance(voice.get("id"), str)):
        raise BadRequest("'voice' is required: a voice name or {\"id\": ...}.", "voice")
    speed = _optional(body, "speed", (int, float))
    if speed is not None and not 0.25 <= speed <= 4:
        raise BadRequest("'speed' must be between 0.25 and 4.", "speed")
    for name in ("instructions", "response_format"):
        _optional(body, name, str)
    if body.get("stream_format") not in (None, "audio"):
        raise BadRequest("Only stream_format 'audio' is supported: the answer is the audio file.", "stream_format")
    return body


def transcription_request(mimetype, form, files):
    """Check a /v1/audio/transcriptions upload; returns the body the router relays: the form's
    fields (each a list of values), `model`, and `file` as (name, bytes, content type).

    :raise GatewayError: 415 when the request is not multipart/form-data.
    """
    if mimetype != "multipart/form-data":
        raise GatewayError(415, "Send multipart/form-data with the audio in a 'file' field.",
                           code="unsupported_media_type")
    upload = files.get("file")
    content = upload.read() if upload is not None else b""
    if not content:
        raise BadRequest("'file' is required: the audio to transcribe.", "file")
    body = {name: form.getlist(name) for name in form if name != "model"}
    body["model"] = form.get("model")
    _model(body)
    if body.get("stream") not in (None, ["false"]):
        raise BadRequest("Streamed transcription is not supported; leave 'stream' out.", "stream")
    body["file"] = (upload.filename or "audio", content, upload.mimetype or "application/octet-stream")
    return body


def rerank_request(body):
    """Check a /v1/rerank body (vLLM, Jina and Cohere shape): a query and the documents to order."""
    _object_with_model(body)
    if not isinstance(body.get("query"), str) or not body["query"].strip():
        raise BadRequest("'query' must be a non-empty string.", "query")
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) and d for d in documents):
        raise BadRequest("'documents' must be a non-empty array of non-empty strings.", "documents")
    top_n = _optional(body, "top_n", int)
    if top_n is not None and top_n < 1:
        raise BadRequest("'top_n' must be a positive integer.", "top_n")
    _optional(body, "return_documents", bool)
    return body


def _moderation_part(part):
    kind = part.get("type") if isinstance(part, dict) else None
    return (kind == "text" and isinstance(part.get("text"), str)) or (
        kind == "image_url" and isinstance(part.get("image_url"), dict) and isinstance(part["image_url"].get("url"), str))


def _text_or_texts(value):
    """A non-empty string, or a non-empty array of non-empty strings: the text `input` of embeddings and moderations."""
    return bool(isinstance(value, str) and value or isinstance(value, list) and value
                and all(isinstance(v, str) and v for v in value))


def _object_with_model(body):
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    _model(body)


def token_ids_in(body):
    """True when an embeddings `input` is token ids (one array or several) rather than text."""
    value = body["input"]
    return isinstance(value, list) and not isinstance(value[0], str)


def _token_ids(values):
    return all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31 for v in values)


def _model(body):
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' is required and must be a string.", "model")
    if len(model) > 200 or any(ord(c) < 32 for c in model):
        raise BadRequest("'model' contains characters that are not allowed.", "model")


def _message(message, where):
    if not isinstance(message, dict):
        raise BadRequest(f"'{where}' must be an object.", where)
    if message.get("role") not in ROLES:
        raise BadRequest(f"'{where}.role' must be one of {', '.join(sorted(ROLES))}.", f"{where}.role")
    content = message.get("content")
    if content is None:
        if message.get("role") == "assistant" or message.get("tool_calls"):
            return
        raise BadRequest(f"'{where}.content' is required.", f"{where}.content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise BadRequest(f"'{where}.content' must be a string or an array of content parts.", f"{where}.content")
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url" and isinstance(part.get("image_url"), dict) and isinstance(part["image_url"].get("url"), str):
            continue
        if kind == "file" and isinstance(part.get("file"), dict) and _file(part["file"]):
            continue
        raise BadRequest(f"'{where}.content[{j}]' must be a text, image_url or file part.", f"{where}.content")


def _file(file):
    """A `file` part: inline as a base64 data: URL (every family that reads files), or an OpenAI file id."""
    data = file.get("file_data")
    return (isinstance(data, str) and data.startswith("data:") and ";base64," in data) or isinstance(file.get("file_id"), str)


def _optional(body, name, types):
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) and types is not bool and bool not in (types if isinstance(types, tuple) else (types,)):
        raise BadRequest(f"'{name}' has the wrong type.", name)
    if not isinstance(value, types):
        raise BadRequest(f"'{name}' has the wrong type.", name)
    return value

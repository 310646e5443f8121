"""Seed 001's own endpoints: generate-text, vision text extraction and health.

Both model endpoints are thin shapes over the one routing pipeline (`route_chat`), so they get
the same key priority, failover, billing and request log as /v1/chat/completions.
"""
import base64
import time

from flask import Blueprint, current_app, g, jsonify, request

from blueprints.api import assign_request_id, read_json_body
from blueprints.api.chat import route_chat
from blueprints.api.detail import detail_api
from blueprints.api.records import Turn
from blueprints.health_detail import system_stats
from gateway import validation
from gateway.errors import GatewayError

bp = Blueprint("native", __name__, url_prefix="/api/v1")
detail_api(bp, public=("health",))
STARTED = time.monotonic()
VISION_MAX_BYTES = 10 * 1024 * 1024
IMAGE_SIGNATURES = (("image/png", b"\x89PNG\r\n\x1a\n"), ("image/jpeg", b"\xff\xd8\xff"), ("image/gif", b"GIF87a"),
                    ("image/gif", b"GIF89a"))
DEFAULT_VISION_PROMPT = "Extract all text visible in this image. Answer with the text only."


bp.before_request(assign_request_id)


@bp.post("/chat/generate-text")
def generate_text():
    body = read_json_body()
    if not isinstance(body, dict) or not isinstance(body.get("message"), str) or not body["message"].strip():
        raise GatewayError(400, "'message' is required and must be a non-empty string.", code="invalid_parameter")
    history = body.get("history") or []
    if not isinstance(history, list):
        raise GatewayError(400, "'history' must be an array of messages.", code="invalid_parameter")
    chat = validation.chat_request({"model": body.get("model") or _default_model(),
                                    "messages": history + [{"role": "user", "content": body["message"]}]})
    return jsonify(_complete(chat, "generate-text", "response_text"))


@bp.post("/vision/extract-text")
def extract_text():
    upload = request.files.get("file")
    if upload is None:
        raise GatewayError(400, "A multipart 'file' field with the image is required.", code="invalid_parameter")
    with upload.stream:
        data = upload.stream.read(VISION_MAX_BYTES + 1)
    if len(data) > VISION_MAX_BYTES:
        raise GatewayError(413, f"The image exceeds {VISION_MAX_BYTES // (1024 * 1024)} MiB.", code="file_too_large")
    media_type = sniff_image(data)
    if media_type is None:
        raise GatewayError(415, "Unsupported file: send a PNG, JPEG, WebP or GIF image.", code="unsupported_media_type")
    prompt = request.form.get("prompt") or DEFAULT_VISION_PROMPT
    image = f"data:{media_type};base64,{base64.b64encode(data).decode()}"
    chat = validation.chat_request({"model": request.form.get("model") or _default_model(), "messages": [
        {"role": "user", "content": [{"type": "text", "text": prompt}, {"type": "image_url", "image_url": {"url": image}}]}]})
    answer = _complete(chat, "vision", "extracted_text")
    return jsonify({"filename": upload.filename or "", "content_type": media_type, **answer})


@bp.get("/health")
def health():
    """Liveness with per-provider state from the circuit breakers: probes never call a paid upstream."""
    gateway = current_app.extensions["gateway"]
    uptime = int(time.monotonic() - STARTED)
    providers = {name: p.enabled and gateway.router.breakers.provider_usable(name)
                 for name, p in gateway.settings.providers.items()}
    return jsonify({"status": "healthy", "uptime": f"{uptime // 3600:02d}:{uptime % 3600 // 60:02d}:{uptime % 60:02d}",
                    "providers": providers, "system_stats": system_stats()})


def sniff_image(data):
    """The image type from its first bytes (never from the file name or the declared type)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for kind, magic in IMAGE_SIGNATURES if data.startswith(magic)), None)


def _complete(chat, endpoint, text_field):
    turn = Turn(g.caller, endpoint, chat["model"])
    result = route_chat(g.caller, chat, turn, stream=False)
    turn.served(result.model, result.attempts, result.usage)
    message = (result.body.get("choices") or [{}])[0].get("message") or {}
    return {text_field: message.get("content") or "", "model_used": result.model.id}


def _default_model():
    chat_models = [m for m in current_app.extensions["gateway"].catalog.visible(g.caller.model_limits)
                   if m.kind == "chat"]
    if not chat_models:
        raise GatewayError(503, "No chat model is configured.", code="no_model")
    return chat_models[0].id

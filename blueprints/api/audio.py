"""POST /v1/audio/speech (the audio comes back as the upstream sent it) and /v1/audio/transcriptions
(a multipart upload), relayed to OpenAI-compatible upstreams of `speech` and `transcription` models."""
from flask import request

from blueprints.api import bp, read_json_body
from blueprints.api.auth import authenticate
from blueprints.api.relayed import relay
from gateway import validation


@bp.post("/audio/speech")
def create_speech():
    caller = authenticate()
    return relay(caller, "audio/speech", validation.speech_request(read_json_body()))


@bp.post("/audio/transcriptions")
def create_transcription():
    caller = authenticate()
    return relay(caller, "audio/transcriptions",
                 validation.transcription_request(request.mimetype, request.form, request.files))

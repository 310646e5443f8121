"""The rest of the OpenAI surface (moderations, images, speech, transcriptions) and rerank: relayed to
OpenAI-compatible upstreams of the model's kind, held and billed as the catalog says, failing over
like chat; a model of another kind is a 404, bad input a 400, neither calls upstream nor charges."""
import io

import openai
import pytest
import requests
import sqlalchemy as sa

from conftest import make_key, make_user
from extensions import db
from fake_upstream import Fault
from helpers import gateway_config, live_server
from models import CreditTransaction, RequestLog, credit

PRICED = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}       # micro-USD per token
MODELS = {
    "mod": {"provider": "openai", "kind": "moderation", "per_request": 0.001},
    "mod-b": {"provider": "openai", "kind": "moderation", "per_request": 0.002},
    "img": {"provider": "openai", "kind": "image", "per_image": 0.04, **PRICED},
    "tts": {"provider": "openai", "kind": "speech", "input_per_mtok": 1000.0},
    "stt": {"provider": "openai", "kind": "transcription", **PRICED},
    "rr": {"provider": "openai", "kind": "rerank", "input_per_mtok": 1000.0},
    "m1": {"provider": "openai"},
}
AUDIO = b"RIFF fake wave bytes " * 50


@pytest.fixture
def gateway(make_app, upstream):
    """The models above (mod and mod-b in one group), one upstream key, a user with 100 credits."""
    app = make_app(gateway_config(upstream, MODELS, {"moderators": ["mod", "mod-b"]}, keys=("key-a",),
                                  retry={"max_attempts": 1}))
    return app, funded_user(app)


def funded_user(app, credits=100):
    user_id = make_user(app)
    with app.app_context():
        credit.grant(user_id, int(credits * 1_000_000))
        db.session.commit()
    return user_id, {"Authorization": f"Bearer {make_key(app, user_id)}"}


def charges(app, user_id):
    """What the user was charged, in micro-USD, request by request."""
    with app.app_context():
        return [-amount for amount in db.session.scalars(
            sa.select(CreditTransaction.amount).where(CreditTransaction.user_id == user_id,
                                                      CreditTransaction.kind == "charge")
            .order_by(CreditTransaction.id))]


def logged(app):
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            sa.select(RequestLog.endpoint, RequestLog.model, RequestLog.status).order_by(RequestLog.id))]


def sdk(base, headers):
    return openai.OpenAI(base_url=base + "/v1", api_key=headers["Authorization"][7:], max_retries=0)


def test_moderations_through_the_sdk_billed_per_request(gateway, upstream):
    app, (user_id, headers) = gateway
    with live_server(app) as base:
        result = sdk(base, headers).moderations.create(model="mod", input=["first text", "second text"])
    assert result.model == "mod" and len(result.results) == 2 and result.results[0].flagged is False
    assert upstream.requests[0].path == "/v1/moderations"
    assert upstream.requests[0].body == {"model": "mod", "input": ["first text", "second text"]}
    assert upstream.requests[0].key == "key-a"
    assert charges(app, user_id) == [1000]                                  # 0.001 USD a request
    assert logged(app) == [("moderations", "mod", 200)]


def test_images_through_the_sdk_billed_per_image_and_reported_tokens(gateway, upstream):
    app, (user_id, headers) = gateway
    with live_server(app) as base:
        result = sdk(base, headers).images.generate(model="img", prompt="a red cat", n=2, size="1024x1024")
    assert [image.b64_json for image in result.data] == ["aW1hZ2U="] * 2
    assert upstream.requests[0].body == {"model": "img", "prompt": "a red cat", "n": 2, "size": "1024x1024"}
    prompt, output = upstream.usage
    assert charges(app, user_id) == [2 * 40_000 + prompt * 1000 + output * 2000]
    assert logged(app) == [("images/generations", "img", 200)]


def test_speech_through_the_sdk_returns_the_upstream_audio(gateway, upstream):
    """The audio and its content type come back as the upstream sent them; the text's bound is charged
    (speech upstreams report no usage)."""
    app, (user_id, headers) = gateway
    with live_server(app) as base:
        response = sdk(base, headers).audio.speech.with_raw_response.create(model="tts", voice="alloy",
                                                                            input="hello there")
    assert response.headers["content-type"] == "audio/mpeg" and response.headers["x-gateway-model"] == "tts"
    audio = response.parse().content
    assert audio == b"ID3 fake mp3 of hello there"
    assert upstream.requests[0].body == {"model": "tts", "voice": "alloy", "input": "hello there"}
    assert charges(app, user_id) == [len("hello there") * 1000]
    assert logged(app) == [("audio/speech", "tts", 200)]


def test_transcriptions_through_the_sdk_send_the_file_as_multipart(gateway, upstream):
    app, (user_id, headers) = gateway
    with live_server(app) as base:
        client = sdk(base, headers)
        result = client.audio.transcriptions.create(model="stt", file=("talk.wav", AUDIO, "audio/wav"), language="en")
        text = client.audio.transcriptions.create(model="stt", file=("talk.wav", AUDIO, "audio/wav"),
                                                  response_format="text")
    assert result.text == upstream.reply_text and text.strip() == upstream.reply_text
    sent = upstream.requests[0]
    assert sent.path == "/v1/audio/transcriptions" and sent.headers["content-type"].startswith("multipart/form-data")
    assert sent.body["model"] == "stt" and sent.body["language"] == "en"
    assert sent.body["file"] == {"filename": "talk.wav", "content_type": "audio/wav", "data": AUDIO}
    prompt, output = upstream.usage
    reported = prompt * 1000 + output * 2000
    held = (len(AUDIO) // 64 + 1) * 3000          # a text answer reports nothing: its bound is charged
    assert charges(app, user_id) == [reported, held]
    assert logged(app) == [("audio/transcriptions", "stt", 200)] * 2


def test_rerank_vllm_shape_billed_on_reported_tokens(gateway, upstream):
    app, (user_id, headers) = gateway
    body = {"model": "rr", "query": "capital of France", "documents": ["Paris", "Berlin", "Rome"], "top_n": 2}
    response = app.test_client().post("/v1/rerank", headers=headers, json=body)
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["model"] == "rr" and [r["index"] for r in answer["results"]] == [0, 1]
    assert upstream.requests[0].body == body
    assert charges(app, user_id) == [upstream.usage[0] * 1000]
    assert logged(app) == [("rerank", "rr", 200)]


def test_failover_from_a_5xx_candidate(gateway, upstream):
    """The group's next model answers when the first one's upstream fails; the one that answered is charged."""
    app, (user_id, headers) = gateway
    upstream.script(Fault.status(503), model="mod")
    response = app.test_client().post("/v1/moderations", headers=headers, json={"model": "mod", "input": "text"})
    assert response.status_code == 200 and response.get_json()["model"] == "mod-b"
    assert response.headers["X-Gateway-Model"] == "mod-b" and response.headers["X-Gateway-Attempts"] == "2"
    assert [r.model for r in upstream.requests] == ["mod", "mod-b"]
    assert charges(app, user_id) == [2000]
    assert logged(app) == [("moderations", "mod-b", 200)]


def test_failover_to_the_next_key_resends_the_upload(make_app, upstream):
    """A refused key (401) gives way to the provider's next one, with the same file in the same request."""
    app = make_app(gateway_config(upstream, MODELS, keys=("key-a", "key-b")))
    user_id, headers = funded_user(app)
    upstream.script(Fault.status(401, "bad key"), key="key-a")
    response = app.test_client().post("/v1/audio/transcriptions", headers=headers,
                                      data={"model": "stt", "file": (_upload(), "a.wav")})
    assert response.status_code == 200 and response.get_json()["text"] == upstream.reply_text
    assert [(r.key, r.body["file"]["data"]) for r in upstream.requests] == [("key-a", AUDIO), ("key-b", AUDIO)]
    assert len(charges(app, user_id)) == 1 and logged(app) == [("audio/transcriptions", "stt", 200)]


@pytest.mark.parametrize("path, body, needed", [
    ("/v1/moderations", {"model": "m1", "input": "x"}, "moderation"),
    ("/v1/images/generations", {"model": "mod", "prompt": "x"}, "image"),
    ("/v1/audio/speech", {"model": "img", "input": "x", "voice": "alloy"}, "speech"),
    ("/v1/rerank", {"model": "tts", "query": "x", "documents": ["y"]}, "rerank"),
    ("/v1/chat/completions", {"model": "rr", "messages": [{"role": "user", "content": "x"}]}, "chat"),
])
def test_a_model_of_another_kind_is_a_404_naming_the_kind_needed(gateway, upstream, path, body, needed):
    app, (user_id, headers) = gateway
    response = app.test_client().post(path, headers=headers, json=body)
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert f"needs a {needed} model" in error["message"] and error["param"] == "model"
    assert upstream.requests == [] and charges(app, user_id) == []


def test_a_transcription_model_of_another_kind_is_a_404(gateway, upstream):
    app, (user_id, headers) = gateway
    response = app.test_client().post("/v1/audio/transcriptions", headers=headers,
                                      data={"model": "tts", "file": (_upload(), "a.wav")})
    assert response.status_code == 404 and "needs a transcription model" in response.get_json()["error"]["message"]
    assert upstream.requests == [] and charges(app, user_id) == []


def test_a_family_without_the_endpoint_answers_404_without_a_call(make_app, upstream):
    """An Anthropic model declared `moderation` is refused by name: no translation is invented."""
    app = make_app(gateway_config(upstream, {"claude-mod": {"provider": "anthropic", "kind": "moderation"}},
                                  keys=("key-a",)))
    user_id, headers = funded_user(app)
    response = app.test_client().post("/v1/moderations", headers=headers, json={"model": "claude-mod", "input": "x"})
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "endpoint_not_supported" and "/v1/moderations is not served by the anthropic" in error["message"]
    assert upstream.requests == [] and charges(app, user_id) == []


@pytest.mark.parametrize("path, body, param", [
    ("/v1/moderations", {"model": "mod"}, "input"),
    ("/v1/moderations", {"model": "mod", "input": [1, 2]}, "input"),
    ("/v1/moderations", {"input": "x"}, "model"),
    ("/v1/images/generations", {"model": "img", "prompt": ""}, "prompt"),
    ("/v1/images/generations", {"model": "img", "prompt": "x", "n": 11}, "n"),
    ("/v1/images/generations", {"model": "img", "prompt": "x", "stream": True}, "stream"),
    ("/v1/audio/speech", {"model": "tts", "input": "x"}, "voice"),
    ("/v1/audio/speech", {"model": "tts", "input": "x" * 4097, "voice": "alloy"}, "input"),
    ("/v1/audio/speech", {"model": "tts", "input": "x", "voice": "alloy", "speed": 9}, "speed"),
    ("/v1/audio/speech", {"model": "tts", "input": "x", "voice": "alloy", "stream_format": "sse"}, "stream_format"),
    ("/v1/rerank", {"model": "rr", "query": "x", "documents": []}, "documents"),
    ("/v1/rerank", {"model": "rr", "documents": ["y"]}, "query"),
    ("/v1/rerank", {"model": "rr", "query": "x", "documents": ["y"], "top_n": 0}, "top_n"),
])
def test_bad_input_is_a_400_without_a_call_or_a_charge(gateway, upstream, path, body, param):
    app, (user_id, headers) = gateway
    response = app.test_client().post(path, headers=headers, json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == param
    assert upstream.requests == [] and charges(app, user_id) == [] and logged(app) == []


def test_bad_uploads_to_transcriptions(make_app, upstream):
    """JSON instead of multipart is a 415, no file a 400, a file over the body limit a 413: none reaches upstream."""
    app = make_app(gateway_config(upstream, MODELS, keys=("key-a",)), MAX_CONTENT_LENGTH=64 * 1024)
    user_id, headers = funded_user(app)
    client = app.test_client()
    as_json = client.post("/v1/audio/transcriptions", headers=headers, json={"model": "stt", "file": "x"})
    no_file = client.post("/v1/audio/transcriptions", headers=headers, data={"model": "stt"},
                          content_type="multipart/form-data")
    too_big = client.post("/v1/audio/transcriptions", headers=headers,
                          data={"model": "stt", "file": (_upload(b"x" * 100_000), "big.wav")})
    assert (as_json.status_code, as_json.get_json()["error"]["code"]) == (415, "unsupported_media_type")
    assert (no_file.status_code, no_file.get_json()["error"]["param"]) == (400, "file")
    assert too_big.status_code == 413 and too_big.get_json()["error"]["type"] == "invalid_request_error"
    assert upstream.requests == [] and charges(app, user_id) == []


def test_the_worst_case_is_held_first(make_app, upstream):
    """Ten images at 0.04 USD cannot be held on 0.3 credits: 402 before any upstream call."""
    app = make_app(gateway_config(upstream, MODELS, keys=("key-a",)))
    user_id, headers = funded_user(app, credits=0.3)
    response = app.test_client().post("/v1/images/generations", headers=headers,
                                      json={"model": "img", "prompt": "x", "n": 10})
    assert response.status_code == 402 and response.get_json()["error"]["credits_required"] > 0.4
    assert upstream.requests == [] and charges(app, user_id) == []


def test_the_sdk_client_sees_upstream_request_errors_in_openai_shape(gateway, upstream):
    """An upstream 400 is answered at once, as an OpenAI error, and nothing is charged."""
    app, (user_id, headers) = gateway
    upstream.script(Fault.status(400, "size not supported"), model="img")
    with live_server(app) as base:
        with pytest.raises(openai.BadRequestError) as raised:
            sdk(base, headers).images.generate(model="img", prompt="x", size="9x9")
    assert "size not supported" in raised.value.message
    assert len(upstream.requests) == 1 and charges(app, user_id) == []


def _upload(data=AUDIO):
    return io.BytesIO(data)


def test_rerank_via_requests_against_a_live_server(gateway, upstream):
    """A plain HTTP client (Cohere/Jina style) gets the ranking and the gateway's headers."""
    app, (_user_id, headers) = gateway
    with live_server(app) as base:
        response = requests.post(base + "/v1/rerank", headers=headers, timeout=10,
                                 json={"model": "rr", "query": "q", "documents": ["a", "b"]})
    assert response.status_code == 200 and len(response.json()["results"]) == 2
    assert response.headers["X-Gateway-Provider"] == "openai" and "X-Credits-Charged" in response.headers

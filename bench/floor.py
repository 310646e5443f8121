"""The floor under this gateway: Flask on gunicorn's gevent worker relaying a chat request to the fake
upstream and its answer back, with nothing else (no auth, billing, limits, log or translation).

What it costs per request is what any gateway on this stack pays before doing its own work; bench/floor.sh
measures it for four upstream clients (FLOOR_CLIENT): none (a canned answer, no upstream call), urllib3
(one pooled HTTPConnectionPool), requests (a Session whose pool is as large as the gateway's) and
geventhttpclient (one pooled HTTPClient, what gateway/transport.py is built on).
"""
from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402

import requests  # noqa: E402
import urllib3  # noqa: E402
from flask import Flask, Response, request  # noqa: E402
from geventhttpclient import HTTPClient  # noqa: E402

UPSTREAM_HOST, UPSTREAM_PORT, UPSTREAM_PATH = "127.0.0.1", 18080, "/v1/chat/completions"
CLIENT = os.environ.get("FLOOR_CLIENT", "requests")
CANNED = json.dumps({"id": "floor", "object": "chat.completion", "created": 1, "model": "bench-model",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()

app = Flask(__name__)
session = requests.Session()
session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=256, max_retries=0))
pool = urllib3.HTTPConnectionPool(UPSTREAM_HOST, UPSTREAM_PORT, maxsize=256, retries=False)
client = HTTPClient(UPSTREAM_HOST, UPSTREAM_PORT, concurrency=1000)


@app.post("/v1/chat/completions")
def chat():
    body = request.get_json()
    if CLIENT == "none":
        return Response(CANNED, content_type="application/json")
    headers = {"Authorization": "Bearer sk-fake-upstream-key", "Content-Type": "application/json"}
    if CLIENT == "geventhttpclient":
        answer = client.request("POST", UPSTREAM_PATH, body=json.dumps(body).encode(), headers=headers)
        return Response(answer.read(), status=answer.status_code, content_type="application/json")
    if CLIENT == "urllib3":
        answer = pool.urlopen("POST", UPSTREAM_PATH, body=json.dumps(body).encode(), headers=headers)
        return Response(answer.data, status=answer.status, content_type="application/json")
    answer = session.post(f"http://{UPSTREAM_HOST}:{UPSTREAM_PORT}{UPSTREAM_PATH}", json=body, headers=headers)
    return Response(answer.content, status=answer.status_code, content_type="application/json")

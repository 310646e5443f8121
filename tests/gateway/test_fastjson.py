"""orjson on the hot path writes what the standard library and Flask's provider wrote, or falls back to them."""
import datetime
import decimal
import json

from flask import Flask, jsonify

from blueprints.json_answers import JSONAnswers
from gateway import fastjson


def test_dumps_takes_what_orjson_refuses_through_the_standard_library():
    for value in ({"max_tokens": 2 ** 70}, {1: "a"}, {"text": "é", "n": [1, 2.5, None, True]}, {"t": "a\ud800b"}):
        assert json.loads(fastjson.dumps(value)) == json.loads(json.dumps(value))
    assert fastjson.dumps({"a": [1, 2]}) == b'{"a":[1,2]}'


def test_loads_refuses_what_json_refuses():
    for raw in (b"[NaN]", b"{", b'"\\ud800"'):
        try:
            fastjson.loads(raw)
        except ValueError:
            continue
        raise AssertionError(f"{raw!r} was accepted")


def test_json_answers_hold_what_flasks_provider_writes():
    app = Flask(__name__)
    app.json = JSONAnswers(app)
    app.json.sort_keys = False
    value = {"z": 1, "when": datetime.datetime(2026, 12, 1, 4, 5, tzinfo=datetime.timezone.utc),
             "price": decimal.Decimal("1.50"), 3: "int key", "big": 2 ** 70, "text": "привет"}
    with app.app_context():
        answer = jsonify(value)
    body = answer.get_data()
    assert answer.mimetype == "application/json" and body.endswith(b"\n")
    assert json.loads(body) == {"z": 1, "when": "Tue, 01 Dec 2026 04:05:00 GMT", "price": "1.50", "3": "int key",
                                "big": 2 ** 70, "text": "привет"}
    with app.app_context():
        assert list(json.loads(jsonify({"b": 1, "a": 2}).get_data())) == ["b", "a"]     # the order given

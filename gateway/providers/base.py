"""The one small contract every provider family implements, and the HTTP plumbing they share.

A family module only translates: it builds the upstream call from an OpenAI-shaped request,
and turns the upstream answer (JSON or SSE events) back into OpenAI shapes. Sending (through
gateway.transport), timeouts, redirect refusal and error classification live here, once.
"""
import contextlib
import itertools
import time
from dataclasses import dataclass

from gateway import answers, errors, fastjson, ssrf, transport
from gateway.native import NATIVE, lost_in_translation, native_of
from gateway.sse import iter_events
from gateway.tokens import estimate_prompt
from gateway.transport import Transport

MAX_JSON_BYTES = 32 * 1024 * 1024     # a bigger upstream answer is treated as broken, not buffered
MAX_ERROR_BYTES = 64 * 1024
TAIL_TIMEOUT_S = 0.2        # the end of a stream's body follows its last event at once (_read_the_tail)
MAX_TAIL_LINES = 4


@dataclass(frozen=True)
class Target:
    """One attempt's destination: provider, model and the key to use (None for keyless)."""
    provider: object              # config.ProviderSettings
    model: object                 # config.ModelSettings
    key: object = None            # config.ProviderKey or None

    @property
    def base_url(self):
        """Where this attempt goes: the key's own endpoint (a user's, checked against SSRF) or the provider's."""
        return (self.key.base_url if self.key is not None and self.key.base_url else None) or self.provider.base_url


@dataclass
class HttpCall:
    """A prepared upstream request; `json` is the body, `params` the query string."""
    url: str
    headers: dict
    json: dict
    params: dict | None = None
    verify: object = True         # True, or the path of a CA bundle (never False)


@dataclass
class UpstreamStream:
    """An open upstream stream: its chunks, how to hang up, and how to change the idle timeout."""
    chunks: object
    close: object
    set_read_timeout: object = lambda seconds: None


class ProviderAdapter:
    """Base of every family: `complete`, `open_stream` and `embed` are what the router calls."""

    family = ""
    supports_stream = True
    supports_embeddings = False
    supports_tools = True
    # What the family does with OpenAI request fields it cannot express (SPEC 2.1: nothing lost silently):
    ignored_fields = ()       # accepted without effect: listed in X-Gateway-Dropped-Params
    refused_fields = ()       # cannot work: a 400 naming the field, before any upstream call

    def __init__(self, transport=None, user_url_transport=None):
        """`user_url_transport` serves base URLs that users entered (it checks where each connection goes)."""
        self.transport = transport or Transport()
        self.user_url_transport = user_url_transport or self.transport

    # --- what a family module implements -------------------------------------------------
    def chat_call(self, target, body, stream):
        """Build the upstream HttpCall for an OpenAI chat request."""
        raise NotImplementedError

    def parse_chat(self, payload, target, body=None):
        """Turn the upstream JSON answer to `body` into an OpenAI `chat.completion` dict."""
        raise NotImplementedError

    def stream_chunks(self, events, target, body=None):
        """Turn upstream SSE events into OpenAI `chat.completion.chunk` dicts (last one with usage)."""
        raise NotImplementedError

    def dropped_params(self, body):
        """Request fields accepted but without effect on this family (the X-Gateway-Dropped-Params header)."""
        lost = [] if native_of(body, self.family) else lost_in_translation(body)
        return lost + [name for name in self.ignored_fields if body.get(name) is not None]

    def refuse_unsupported(self, body):
        """:raise BadRequest: naming a field this family cannot honour (no upstream call is made)."""
        native = body.get(NATIVE)
        if native and native["family"] != self.family and native["refused"]:
            name = native["refused"][0]
            raise errors.BadRequest(f"'{name}' has no equivalent on the {self.family} upstream serving this model; "
                                    "remove it or choose another model.", name, "unsupported_parameter")
        for name in self.refused_fields:
            if body.get(name):
                raise errors.BadRequest(f"'{name}' cannot be honoured by the {self.family} upstream serving this "
                                        "model; remove it or choose another model.", name, "unsupported_parameter")

    def embeddings_call(self, target, body):
        raise errors.UpstreamError(errors.REQUEST, f"{self.family} does not serve embeddings", 400)

    def parse_embeddings(self, payload, target):
        raise NotImplementedError

    def error_message(self, payload):
        """Extract the human message from the family's error body (dict or None)."""
        if isinstance(payload, dict):
            err = payload.get("error")
            if isinstance(err, dict):
                return str(err.get("message") or err.get("type") or "")
            if isinstance(err, str):
                return err
            if payload.get("message"):
                return str(payload["message"])
        return ""

    def classify(self, status, payload):
        """Kind of failure for a non-2xx status; families refine (e.g. quota exhausted)."""
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            err = payload["error"]
            if "insufficient_quota" in (str(err.get("code")), str(err.get("type"))):
                return errors.AUTH
        return errors.kind_for_status(status)

    # --- shared transport ----------------------------------------------------------------
    def complete(self, target, body, timeout, deadline=None):
        """Non-streaming chat: returns an OpenAI chat.completion dict or raises UpstreamError.

        `deadline` (time.monotonic) bounds the whole answer; `timeout` bounds each connect and read.
        """
        self.refuse_unsupported(body)
        response = self._send(self.chat_call(target, body, stream=False), timeout, target)
        payload = self._read_json(response, deadline)
        return answers.completion(lambda: self.parse_chat(payload, target, body))

    def open_stream(self, target, body, timeout, deadline=None):
        """Streaming chat: returns an UpstreamStream of OpenAI chunks.

        `deadline` bounds the wait for the stream's first content; `set_read_timeout` lifts it.
        """
        self.refuse_unsupported(body)
        response = self._send(self.chat_call(target, body, stream=True), timeout, target)
        limit = ReadDeadline(deadline)
        lines = iter_raw_lines(response, limit)

        def chunks():
            yield from answers.chunks(self.stream_chunks(iter_events(lines), target, body))
            _read_the_tail(response, lines)

        def after_first_chunk(seconds):
            limit.lift()
            response.set_read_timeout(seconds)
        return UpstreamStream(chunks(), response.close, after_first_chunk)

    def count_tokens(self, target, body, timeout, deadline=None):
        """Input tokens of a chat request: the family's own count where it has one, else the gateway's estimate."""
        return estimate_prompt(body)

    def embed(self, target, body, timeout, deadline=None):
        response = self._send(self.embeddings_call(target, body), timeout, target)
        payload = self._read_json(response, deadline)
        return answers.embeddings(lambda: self.parse_embeddings(payload, target))

    def relay(self, endpoint, target, body, timeout, deadline=None):
        """An endpoint passed through unchanged (gateway.passthrough): only OpenAI-compatible upstreams serve them."""
        raise errors.GatewayError(404, f"/v1/{endpoint} is not served by the {target.provider.name} provider "
                                       f"({self.family} family) of this model; only OpenAI-compatible providers serve it.",
                                  code="endpoint_not_supported", param="model")

    def _send(self, call, timeout, target):
        return self._post(call.url, timeout, via=self._transport_for(target),
                          json=call.json, headers=call.headers, params=call.params, verify=call.verify)

    def _transport_for(self, target):
        """For a key with its own endpoint, the transport that checks each connection's address; else the operator's."""
        return self.user_url_transport if target.key is not None and target.key.base_url else self.transport

    def _post(self, url, timeout, what="upstream", via=None, **request):
        """POST; redirects are never followed (a redirect could carry the key away); failures become UpstreamError."""
        try:
            response = (via or self.transport).post(url, timeout, **request)
        except ssrf.UnsafeURL as exc:          # a user's URL whose connection would reach a refused address
            raise errors.UpstreamError(errors.AUTH, str(exc)) from None
        except (UnicodeEncodeError, transport.BadHeader):   # a key saved before keys were checked (config.header_safe)
            raise errors.UpstreamError(errors.AUTH, "the key has characters an HTTP header cannot carry") from None
        except transport.ConnectTimeout:
            raise errors.UpstreamError(errors.TIMEOUT, f"{what} could not be reached in time", endpoint=True) from None
        except transport.ReadTimeout:
            raise errors.UpstreamError(errors.TIMEOUT, f"{what} timed out") from None
        except transport.CallFailed as exc:    # NotConnected: the endpoint is down, not the model
            raise errors.UpstreamError(errors.TRANSIENT, f"{what} connection failed ({exc.reason_name})",
                                       endpoint=isinstance(exc, transport.NotConnected)) from None
        if 300 <= response.status < 400:
            response.close()
            raise errors.UpstreamError(errors.TRANSIENT,
                                       f"{what} answered a redirect ({response.status}); not followed", response.status)
        if response.status >= 400:
            self._raise_for_error(response)
        return response

    def _raise_for_error(self, response):
        raw = read_capped(response, MAX_ERROR_BYTES)
        response.close()
        try:
            payload = fastjson.loads(raw)
        except ValueError:
            payload = None
        status = response.status
        message = self.error_message(payload) or f"upstream answered HTTP {status}"
        raise errors.UpstreamError(self.classify(status, payload), message, status,
                                   errors.parse_retry_after(response.header("Retry-After")))

    def _read_json(self, response, deadline=None):
        try:
            raw = read_capped(response, MAX_JSON_BYTES, ReadDeadline(deadline))
        finally:
            response.close()
        try:
            payload = fastjson.loads(raw)
        except ValueError:
            raise errors.UpstreamError(errors.TRANSIENT, "upstream answered invalid JSON", response.status) from None
        if not isinstance(payload, dict):
            raise errors.UpstreamError(errors.TRANSIENT, "upstream answered an unexpected JSON value", response.status)
        return payload


class ReadDeadline:
    """The latest moment (time.monotonic) a body may still be arriving, checked on every piece.

    A socket timeout bounds each read only: an upstream that trickles bytes, or sends nothing but
    keep-alive comments, would otherwise hold the request past its deadline.
    """

    def __init__(self, at=None):
        self.at = at

    def check(self):
        if self.at is not None and time.monotonic() > self.at:
            raise errors.UpstreamError(errors.TIMEOUT, "upstream too slow: the deadline passed while reading")

    def lift(self):
        self.at = None


def read_capped(response, limit, deadline=None):
    """Read at most `limit` bytes; a larger body is a broken upstream, never buffered whole."""
    data = bytearray()
    for piece in _pieces(response, deadline or ReadDeadline()):
        data += piece
        if len(data) > limit:
            raise errors.UpstreamError(errors.TRANSIENT, f"upstream answer exceeds {limit} bytes", response.status)
    return bytes(data)


def _pieces(response, deadline):
    """The decoded body as it arrives, piece by piece (no read-ahead), within `deadline`.

    Read failures become UpstreamError, so the router can tell a stall or a cut from an end.
    """
    try:
        for piece in response.pieces():
            deadline.check()
            yield piece
    except transport.ReadTimeout:
        raise errors.UpstreamError(errors.TIMEOUT, "upstream stalled: nothing arrived within the read timeout") from None
    except transport.CallFailed as exc:
        raise errors.UpstreamError(errors.TRANSIENT, f"upstream connection broke ({exc.reason_name})") from None


def iter_raw_lines(response, deadline=None):
    """Yield lines of a streamed body as soon as they arrive (no read-ahead buffering)."""
    buffer = b""
    for piece in _pieces(response, deadline or ReadDeadline()):
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        yield from lines
    if buffer:
        yield buffer


def _read_the_tail(response, lines):
    """After a stream's last event (`[DONE]`, `message_stop`), read what little is left of its body (a
    blank line, the chunked terminator), briefly: a body read to its end lets its connection go back
    to the pool, where hanging up costs the next stream a new one (a name lookup in gevent's thread
    pool, a handshake). An upstream that sends more, or nothing, is hung up on when the stream closes."""
    response.set_read_timeout(TAIL_TIMEOUT_S)
    with contextlib.suppress(errors.UpstreamError):
        for _ in itertools.islice(lines, MAX_TAIL_LINES):
            pass


def json_event(event):
    """Parse an SSE event's JSON data; malformed data is a broken stream."""
    try:
        return fastjson.loads(event.data)
    except ValueError:
        raise errors.UpstreamError(errors.TRANSIENT, "upstream sent a malformed stream event", 200) from None

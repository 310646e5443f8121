"""One request's bookkeeping, shared by every routed endpoint: the credit reservation before the
upstream call, the settlement (or release) after it, the request-log row, its metrics and the X-* headers."""
import time
from contextlib import contextmanager

import sqlalchemy as sa
from flask import current_app, g

from extensions import db
from gateway import metrics, pricing
from gateway.errors import GatewayError, ModelNotFound
from gateway.tokens import input_bound, prompt_bound
from models import ApiKey, RequestLog, credit, group_commit
from models.user import utcnow


def current_gateway():
    return current_app.extensions["gateway"]


def routable(caller, model_id, kind, explicit=None):
    """Candidates for the request, limited to what this key may use.

    :raise GatewayError: 403 when the key's model allow-list excludes the requested model.
    """
    if not caller.may_use(model_id):
        raise GatewayError(403, f"This API key may not use the model '{model_id}'.", "permission_error",
                           "model_not_allowed", "model")
    candidates = current_gateway().catalog.candidates(model_id, kind, explicit)
    return [m for i, m in enumerate(candidates) if i == 0 or caller.may_use(m.id)]


def insufficient_credit(exc):
    """402 naming the limit that refused the request (SPEC 2): user balance or key quota."""
    source = "your credit balance" if exc.limit_source == "user_balance" else "this API key's quota"
    needed, available = pricing.to_credits(exc.needed), pricing.to_credits(exc.available)
    return GatewayError(402, f"Insufficient credit: this request may cost up to {pricing.format_credits(exc.needed)} "
                             f"credits and {source} has {pricing.format_credits(exc.available)} available.",
                        "insufficient_quota", "insufficient_quota",
                        extra={"limit_source": exc.limit_source, "credits_required": needed,
                               "credits_available": available})


@contextmanager
def settled(session, turn):
    """Whatever ends a relayed stream (its end, a break, the client leaving), hang up on the
    upstream and charge what was produced, once; the body may set `status`/`error` on the yielded dict."""
    end = {"status": 200, "error": None}
    try:
        yield end
    except GeneratorExit:
        end.update(status=499, error="client disconnected")
        raise
    finally:
        session.close()
        turn.served(session.model, session.attempts, session.produced_usage(), end["status"], end["error"])


class Turn:
    """Reserve → call → settle or release → one log row; never charged twice (request id)."""

    def __init__(self, caller, endpoint, requested_model, stream=False, fixed_cost=None, bound=None):
        """`fixed_cost` (micro-USD) replaces token pricing for flat-priced endpoints (seed 003); `bound`
        (gateway.passthrough.Bound) is what a relayed endpoint may use: held, and its usage charged in full."""
        self.started = time.monotonic()
        self.request_started = g.get("request_started", self.started)     # blueprints/metrics.py sets it
        self.caller = caller
        self.request_id = g.request_id
        self.fields = {"request_id": self.request_id, "user_id": caller.user_id, "api_key_id": caller.key_id,
                       "endpoint": endpoint, "requested_model": requested_model[:200], "stream": stream}
        self.app = current_app._get_current_object()
        self.charged, self.reserved, self.available, self.fixed_cost = None, 0, None, fixed_cost
        self.bound = bound
        self.relay_started = None          # when a committed stream began to be relayed
        self.dropped = []                  # request fields the answering family ignored (the router says which)
        self.ratio = current_gateway().settings.price_groups.get(caller.price_group, 1.0)

    def reserve(self, candidates, body):
        """Hold an upper bound of the cost (the prompt's bound + the completion limit sent upstream,
        at the dearest candidate) or answer 402."""
        if self.fixed_cost is not None:
            amount = self.fixed_cost
        elif self.bound is not None:
            amount = pricing.worst_case(candidates, self.bound.prompt_tokens, self.bound.completion_tokens, self.ratio,
                                        self.bound.images)
        elif "messages" in body:
            amount = pricing.worst_case(candidates, prompt_bound(body), pricing.completion_limit(body), self.ratio)
        else:
            amount = pricing.worst_case(candidates, input_bound(body), 0, self.ratio)
        try:
            self.available = credit.reserve(self.request_id, self.caller.user_id, self.caller.key_id, amount,
                                            self.caller.key_limited, self.app)
            self.reserved = amount
        except credit.InsufficientCredit as exc:
            raise insufficient_credit(exc) from None
        finally:
            db.session.remove()     # no pooled connection is held while the upstream works (and none made to close)

    def hold_while_streaming(self, session):
        """The stream is committed: renew the reservation while it runs, so the sweeper never releases
        a live hold; and from now on, time is the upstream's (its chunks are awaited and relayed)."""
        self.relay_started = time.monotonic()
        if self.reserved:
            session.every(self.app.config["RESERVATION_SWEEP_S"] / 3, self._renew_hold)

    def _renew_hold(self):
        credit.renew(self.request_id, self.app)

    def failed(self, exc):
        """Release the reservation and log the refusal or failure."""
        def release(batch):
            credit.give_back(batch, self.request_id)
        self._commit(release, status=exc.status, error=exc.message[:2000], attempts=[a.as_dict() for a in exc.attempts])

    def served(self, model, attempts, usage, status=200, error=None):
        """Charge the answering model's price for the real (or produced) usage, once, and log.

        The charge never exceeds the hold; what an upstream produced beyond it (one that ignored
        the completion limit) is logged as its overrun, for the operator to see.
        """
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        tokens = pricing.breakdown(usage)
        cost, parts = self._cost(model, usage, status)

        def settle(batch):
            charged, available = credit.settle(batch, self.request_id, self.caller.user_id, self.caller.key_id,
                                               cost, f"{model.id}: {prompt} in / {completion} out")
            return {"cost": charged, "overrun": cost - charged}, (charged, available)
        self.charged, self.available = self._commit(
            settle, status=status, error=error, model=model.id, provider=model.provider,
            attempts=[a.as_dict() for a in attempts], prompt_tokens=prompt, completion_tokens=completion,
            cache_read_tokens=tokens["cache_read"], cache_write_tokens=tokens["cache_write"],
            reasoning_tokens=tokens["reasoning"], cost_parts=parts)
        return self.charged

    def quote(self, model, usage):
        """What `served` will charge for `usage`, in credits: a stream's final usage carries it as `cost`."""
        cost = self._cost(model, usage, 200)[0]
        return pricing.to_credits(min(cost, self.reserved) if self.reserved else cost)

    def _cost(self, model, usage, status):
        """(micro-USD, cost of each part or None). A relayed endpoint pays all its usage; embeddings pay for
        input; an empty completion is free; a flat price is paid only when served whole."""
        if self.bound is not None:
            return pricing.priced(model, usage, self.ratio)
        if self.fields["endpoint"] == "embeddings":
            return pricing.priced(model, {**usage, "completion_tokens": 0}, self.ratio)
        if int(usage.get("completion_tokens") or 0) == 0:
            return 0, None
        if self.fixed_cost is not None:
            return (self.fixed_cost, {"request": self.fixed_cost}) if status == 200 else (0, None)
        return pricing.priced(model, usage, self.ratio)

    def headers(self, model, attempts):
        """The routing facts every answer carries, plus the credit facts on paid ones (SPEC 2.1).

        A stream's headers leave before its cost is known: they say what is held and what is left.
        """
        headers = {"X-Gateway-Model": model.id, "X-Gateway-Provider": model.provider,
                   "X-Gateway-Attempts": str(sum(1 for a in attempts if a.kind != "skipped")),
                   "X-Gateway-Dropped-Params": ", ".join(self.dropped)}
        if self.charged is not None and self.available is not None:
            headers["X-Credits-Charged"] = pricing.format_credits(self.charged, exact=True)
        elif self.reserved:
            headers["X-Credits-Reserved"] = pricing.format_credits(self.reserved, exact=True)
        if self.available is not None:
            headers["X-Credits-Remaining"] = pricing.format_credits(self.available, exact=True)
        return headers

    def _commit(self, money, **outcome):
        """`money(batch)` (the settlement or the release) and the log row, in one transaction shared with
        the worker's other requests (models.group_commit); then the metrics. Returns what `money` returns.

        `money` may return (log fields, result): what the log row can only learn from the settlement.
        """
        ended = time.monotonic()
        touch_key = self._key_to_touch(ended)
        row = {**self.fields, "model": None, "provider": None, "error": None, "prompt_tokens": 0,
               "completion_tokens": 0, "cost": 0, "overrun": 0, "cache_read_tokens": 0, "cache_write_tokens": 0,
               "reasoning_tokens": 0, "cost_parts": None, **outcome,
               "latency_ms": round((ended - self.started) * 1000, 1), "created_at": utcnow()}

        def job(batch):
            settled = money(batch)
            fields, result = settled if settled is not None else ({}, None)
            if touch_key is not None:
                batch.execute(_TOUCH_KEY, {"key_id": touch_key, "used_at": row["created_at"]})
            batch.insert(_LOGS, {**row, **fields})
            return result
        result = group_commit.run(self.app, job)
        self._observe(outcome, ended)
        return result

    def _key_to_touch(self, now):
        """The key whose "last used" this request stamps, at most once a minute per key and worker; or None.

        The worker remembers when it last wrote each key's stamp (`app.extensions["keys_touched"]`:
        per worker, by key id), so a busy key costs one extra UPDATE a minute, not one per request.
        """
        key_id = self.caller.key_id
        if key_id is None:
            return None
        touched = self.app.extensions.setdefault("keys_touched", {})
        if now - touched.get(key_id, float("-inf")) < TOUCH_KEY_EVERY_S:
            return None
        touched[key_id] = now
        return key_id

    def _observe(self, outcome, ended):
        """The request's metrics: its whole time (the log row's commit included), and the upstream's
        share of it: every attempt, and a committed stream's relay up to its end."""
        upstream = sum(a["latency_ms"] for a in outcome["attempts"]) / 1000
        if self.relay_started is not None:
            upstream += ended - self.relay_started
        metrics.observe_request(outcome.get("model") or self._requested_label(), outcome["status"],
                                time.monotonic() - self.request_started, upstream)

    def _requested_label(self):
        """The requested model's catalog id when none answered; "unknown" for an id not in the catalog,
        so that clients cannot add a series per made-up name."""
        try:
            return self.app.extensions["gateway"].catalog.resolve(self.fields["requested_model"])[0].id
        except ModelNotFound:
            return "unknown"


TOUCH_KEY_EVERY_S = 60.0
_LOGS = RequestLog.__table__
_TOUCH_KEY = (ApiKey.__table__.update().where(ApiKey.__table__.c.id == sa.bindparam("key_id"))
              .values(last_used_at=sa.bindparam("used_at")))


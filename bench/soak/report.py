"""The soak's verdicts and Markdown report, from what soak.py recorded.

`python bench/soak/report.py OUT` prints the report of a finished run again (from OUT/samples.json).
"""
import json
import os
import statistics
import sys
from collections import Counter

MEMORY_GROWTH_LIMIT = 0.10          # RSS after warm-up may grow less than this over the rest of the run
FLAT_SLACK = {"fds": 5, "greenlets": 10}   # "flat": the run's last quarter may sit this far above its first


def summarize(records):
    """Counts by status and outcome, client errors, and non-stream chat latency for some requests."""
    statuses = Counter(str(r["status"]) for r in records)
    chat_ms = sorted(r["ms"] for r in records if r["kind"] == "chat" and r["status"] == 200)
    return {"count": len(records), "by_status": dict(sorted(statuses.items())),
            "by_kind_outcome": dict(sorted(Counter(f'{r["kind"]}:{r["outcome"] or r["status"]}'
                                                   for r in records).items())),
            "errors_5xx": sum(n for s, n in statuses.items() if s.isdigit() and int(s) >= 500),
            "exceptions": statuses.get("exc", 0),
            "chat_p50_ms": percentile(chat_ms, 0.50), "chat_p99_ms": percentile(chat_ms, 0.99),
            "errors_by_body": dict(Counter(" ".join(r.get("error", "").split())[:200] for r in records
                                           if r.get("error")).most_common(10))}


def percentile(ordered, q):
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def progress_line(sample):
    workers = " ".join(f'{w["pid"]}:{w.get("rss_kib", 0) // 1024}MiB/{w.get("fds")}fd/{w.get("greenlets")}gl'
                       for w in sample["workers"])
    req = sample["requests"]
    return (f't={sample["t"]:>6.0f}s requests={req["count"]} 5xx={req["errors_5xx"]} exc={req["exceptions"]} '
            f'{workers} pg={sample["postgres"]["connections"]}')


# --- verdicts --------------------------------------------------------------------------------------
def verdicts(data):
    samples = data["samples"]
    load = [s for s in samples if s["phase"] == "load"]
    warm = [s for s in load if s["t"] >= data["meta"]["warmup_minutes"] * 60] or load[-1:]
    idle_before, idle_after = samples[0], samples[-1]        # the last: the longest after the drain
    rec, found = data["reconciliation"], []

    def add(name, ok, detail):
        found.append({"check": name, "ok": bool(ok), "detail": detail})

    pids = [sorted(w["pid"] for w in s["workers"]) for s in samples]
    add("workers stable", all(p == pids[0] for p in pids) and data["gunicorn_log"]["worker_timeouts"] == 0,
        f'same {len(pids[0])} worker pids in every sample: {all(p == pids[0] for p in pids)}; '
        f'worker timeouts in the log: {data["gunicorn_log"]["worker_timeouts"]}')
    for slot, pid in enumerate(pids[0]):
        series = lambda field: [worker(s, pid).get(field) for s in warm if worker(s, pid)]  # noqa: E731
        rss = series("rss_kib")
        growth = (rss[-1] - rss[0]) / rss[0] if rss else 0
        add(f"memory, worker {slot + 1}", rss and growth < MEMORY_GROWTH_LIMIT,
            f'RSS {rss[0] / 1024:.1f} MiB at {warm[0]["t"] / 60:.1f} min → {rss[-1] / 1024:.1f} MiB at the end of the '
            f'load ({growth:+.1%}; limit +{MEMORY_GROWTH_LIMIT:.0%}); peak {max(rss) / 1024:.1f} MiB' if rss else
            "no samples")
        # Client connections move between workers (whichever accepts a reconnecting client gets it),
        # so a worker's own descriptors are judged without them; all workers together, with them.
        first, last = quarter_medians([w.get("fds", 0) - w["fd_kinds"]["client"] for w in
                                       (worker(s, pid) for s in warm) if w and "fd_kinds" in w])
        kinds = lambda s: ", ".join(f"{k} {v}" for k, v in worker(s, pid).get("fd_kinds", {}).items())  # noqa: E731
        add(f"fds flat, worker {slot + 1} (without client connections)",
            first is not None and last <= first + FLAT_SLACK["fds"],
            f"median of the first quarter after warm-up {first}, of the last quarter {last} (slack "
            f"+{FLAT_SLACK['fds']}); by kind idle before load: {kinds(idle_before)}; after drain: {kinds(idle_after)}")
        before, after = worker(idle_before, pid).get("greenlets"), worker(idle_after, pid).get("greenlets")
        add(f"greenlets back to idle, worker {slot + 1}", before is not None and after is not None and after <= before,
            f"idle before load {before}, {idle_after['phase']} {after}; under load {min(series('greenlets'))}–"
            f"{max(series('greenlets'))}; alive at the end: {worker(idle_after, pid).get('greenlet_places')}")
        after = worker(idle_after, pid)
        add(f"pool returned, worker {slot + 1}", after.get("pool_checked_out") == 0,
            f'checked out after drain: {after.get("pool_checked_out")}, pool size {after.get("pool_size")}, '
            f'highest seen in the run {max((worker(s, pid).get("pool_peak_checked_out") or 0) for s in samples)}')
    for field in ("fds", "greenlets"):
        first, last = quarter_medians([sum(w.get(field, 0) for w in s["workers"]) for s in warm])
        slack = FLAT_SLACK[field] * len(pids[0])
        add(f"{field} flat, all workers", first is not None and last <= first + slack,
            f"sum over workers: median of the first quarter after warm-up {first}, of the last quarter {last} "
            f"(slack +{slack})")
    pg = idle_after["postgres"]
    add("no transaction left open", pg["idle_in_transaction"] == 0,
        f'PostgreSQL sessions idle in transaction after drain: {pg["idle_in_transaction"]} '
        f'(of {pg["connections"]} connections)')

    users = rec["users"]
    add("balance = sum of the ledger", all(u["balance"] == u["ledger_sum"] for u in users),
        ", ".join(f'{u["user"]} {u["balance"]} = {u["ledger_sum"]}' for u in users) + " (micro-USD)")
    add("no held credit after drain", rec["held_reservations"] == 0 and all(u["reserved"] == 0 for u in users)
        and all(k["reserved_quota"] == 0 for k in rec["keys"]),
        f'held reservations {rec["held_reservations"]}; users.reserved {[u["reserved"] for u in users]}; '
        f'keys.reserved_quota {[k["reserved_quota"] for k in rec["keys"]]}; drained in {data["meta"]["drain_s"]} s')
    add("no negative balance or quota", all(u["balance"] >= 0 for u in users)
        and all(k["unlimited"] or k["remain_quota"] >= 0 for k in rec["keys"]),
        f'lowest balance {min(u["balance"] for u in users)}; capped keys remain '
        f'{[k["remain_quota"] for k in rec["keys"] if not k["unlimited"]]}')
    add("no double charge", rec["charge_rows"] == rec["charge_request_ids_distinct"]
        and rec["charges_without_request_id"] == 0 and rec["charges_without_request_log"] == 0,
        f'{rec["charge_rows"]} charge rows, {rec["charge_request_ids_distinct"]} distinct request ids, '
        f'{rec["charges_without_request_id"]} without one, {rec["charges_without_request_log"]} without a request log row')
    uncharged = sum(row["served_uncharged"] for row in rec["by_request_log"] if row["status"] == 200)
    add("no lost charge", rec["client_paid_missing_in_ledger"] == 0 and rec["client_paid_amount_differs"] == 0
        and uncharged == 0,
        f'{rec["client_paid_answers"]} non-stream answers said what they cost: {rec["client_paid_missing_in_ledger"]} '
        f'missing from the ledger, {rec["client_paid_amount_differs"]} with another amount '
        f'({rec["client_paid_sum_micro"]} vs ledger {rec["ledger_sum_for_client_paid_micro"]} micro-USD); '
        f'served (200) with tokens but uncharged in request_logs: {uncharged}')
    add("one request log row per request", rec["request_log_rows"] == rec["client_routed_requests"],
        f'{rec["request_log_rows"]} rows for {rec["client_routed_requests"]} client requests to the chat routes')
    totals = data["totals"]
    add("no client connection errors", totals["exceptions"] == 0,
        f'{totals["exceptions"]} requests failed below HTTP (reset, timeout); {totals["errors_5xx"]} answered 5xx '
        f'of {totals["count"]}')
    return found


def worker(sample, pid):
    return next((w for w in sample["workers"] if w["pid"] == pid), {})


def quarter_medians(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    q = max(1, len(values) // 4)
    return statistics.median(values[:q]), statistics.median(values[-q:])


# --- the report ------------------------------------------------------------------------------------
def render(data):
    meta, samples, rec = data["meta"], data["samples"], data["reconciliation"]
    lines = [f'# Soak run {meta["started_utc"]}', "",
             f'`{meta["command"]}`: {meta["minutes"]} min of load at {meta["rate"]} req/s (at most '
             f'{meta["concurrency"]} in flight), gunicorn with {meta["workers"]} gevent workers, {meta["database"]}, '
             f'Redis {"on" if meta["redis"] else "off"}, upstream fault rate {meta["fault_rate"]:.0%}, '
             f'{meta["cores"]} cores. Warm-up: the first {meta["warmup_minutes"]:g} min. Output: `{meta["out"]}`.'
             + (f' Code: commit {meta["code"]["commit"]}, with {len(meta["code"]["changed_files"])} files changed in '
                f'the working tree at the end of the run.' if meta.get("code") else ""), "",
             "## Verdicts", "", "| check | result | detail |", "|---|---|---|"]
    lines += [f'| {v["check"]} | {"held" if v["ok"] else "**did not hold**"} | {v["detail"]} |' for v in verdicts(data)]
    lines += ["", "## Over time", "",
              "Per worker (w1 / w2 …, by pid order): RSS, open descriptors, greenlets and live objects from "
              "the in-worker probe, and the database pool's checked-out connections at the sample (highest "
              "since the previous one); CPU is the worker's share of one core over the interval; machine busy "
              "is the whole machine's (all cores, other people's work included) with its 1-minute load average. "
              "Requests: those that ended in the interval; 5xx and below-HTTP failures count as errors; "
              "latency is non-stream chat answers (200).", "",
              "| t min | phase | req/s | errors | statuses | chat p50 / p99 ms | machine busy % (load) | CPU % "
              "| RSS MiB | fds | greenlets | objects k | pool out (peak) | PG conns | held |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    previous = None
    for s in samples:
        req, ws = s["requests"], sorted(s["workers"], key=lambda w: w["pid"])
        dt = s["t"] - previous["t"] if previous else 0
        joined = lambda f: " / ".join(f(w) for w in ws)  # noqa: E731
        cpu = joined(lambda w: f'{100 * (w.get("cpu_s", 0) - worker(previous, w["pid"]).get("cpu_s", 0)) / dt:.0f}'
                     if previous and dt > 0 and worker(previous, w["pid"]) else "")
        machine = ""
        if previous and "machine" in s and "machine" in previous:
            busy = s["machine"]["cpu_busy_s"] - previous["machine"]["cpu_busy_s"]
            total = s["machine"]["cpu_total_s"] - previous["machine"]["cpu_total_s"]
            machine = f'{100 * busy / total:.0f} ({s["machine"]["load1"]:.1f})' if total > 0 else ""
        previous = s
        lines.append(" | ".join([
            f'| {s["t"] / 60:.2f}', s["phase"], f'{req["count"] / dt:.1f}' if s["phase"] == "load" and dt > 0 else "",
            str(req["errors_5xx"] + req["exceptions"]) if req["count"] else "",
            " ".join(f"{k}:{v}" for k, v in req["by_status"].items()),
            f'{req["chat_p50_ms"]:.0f} / {req["chat_p99_ms"]:.0f}' if req["chat_p50_ms"] is not None else "",
            machine, cpu,
            joined(lambda w: f'{w.get("rss_kib", 0) / 1024:.1f}'), joined(lambda w: str(w.get("fds"))),
            joined(lambda w: str(w.get("greenlets"))), joined(lambda w: f'{w.get("gc_objects", 0) / 1000:.0f}'),
            joined(lambda w: f'{w.get("pool_checked_out")} ({w.get("pool_peak_checked_out")})'),
            str(s["postgres"]["connections"]), str(s["postgres"]["held_reservations"]) + " |"]))
    lines += ["", "Descriptors by kind, each minute (worker: client connections / upstream / PostgreSQL / Redis / "
              "other: listening socket, pipes, files, epoll):", "",
              "| t min | " + " | ".join(f"w{i + 1}" for i in range(len(samples[0]["workers"]))) + " |",
              "|---|" + "---|" * len(samples[0]["workers"])]
    for index, s in enumerate(samples):
        if "fd_kinds" in (s["workers"] or [{}])[0] and (index % 4 == 0 or s["phase"] != "load"):
            lines.append(f'| {s["t"] / 60:.2f} | ' + " | ".join(" / ".join(str(v) for v in w["fd_kinds"].values())
                                                             for w in sorted(s["workers"], key=lambda w: w["pid"])) + " |")
    totals = data["totals"]
    lines += ["", "## Requests", "",
              f'{totals["count"]} client requests; by status: '
              + ", ".join(f"{k}: {v}" for k, v in totals["by_status"].items()) + ".", "",
              "| kind:outcome | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in totals["by_kind_outcome"].items()]
    if totals.get("errors_by_body"):
        lines += ["", "5xx answers by body:", ""] + [f"- {n} × `{body}`" for body, n in totals["errors_by_body"].items()]
    lines += ["", "Outcomes: `ok`/`done` served (a stream's `done` = its proper end arrived); `truncated` = a stream "
              "that ended with an error event and no end marker after the upstream cut it; `abandoned` = the client "
              "hung up after the first event; `refused` = 4xx (402 once a user's or key's credit is spent); "
              "`error` = 5xx.", "",
              "## Money", "", "| user | balance | reserved | ledger sum | charges | grants |", "|---|---|---|---|---|---|"]
    lines += [f'| {u["user"]} | {u["balance"]} | {u["reserved"]} | {u["ledger_sum"]} | {u["charges"]} | {u["grants"]} |'
              for u in rec["users"]]
    lines += ["", "Amounts in micro-USD. Keys with a quota: " + "; ".join(
        f'{k["user"]}/{k["key"]} remain {k["remain_quota"]}, used {k["used_quota"]}, reserved {k["reserved_quota"]}'
        for k in rec["keys"] if not k["unlimited"]) + f'. Reservations by status: {rec["reservations_by_status"]}. '
        f'Upstream overrun logged: {rec["overrun_micro"]} micro-USD.', "",
        "Request log against the ledger (charged = has a charge row):", "",
        "| endpoint | stream | status | rows | charged | charged micro-USD |", "|---|---|---|---|---|---|"]
    lines += [f'| {r["endpoint"]} | {r["stream"]} | {r["status"]} | {r["rows"]} | {r["charged"]} | {r["charged_micro"]} |'
              for r in rec["by_request_log"]]
    log = data["gunicorn_log"]
    lines += ["", "## gunicorn", "",
              f'Stopped with SIGTERM in {meta.get("gunicorn_stop_s")} s. Log: {log["lines"]} lines, '
              f'{log["worker_boots"]} worker boots, {log["worker_timeouts"]} worker timeouts, {log["tracebacks"]} '
              f'tracebacks, {log["errors"]} error lines.']
    lines += [f"    {line}" for line in log["examples"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open(os.path.join(sys.argv[1], "samples.json")) as fh:
        print(render(json.load(fh)), end="")

#!/usr/bin/env python3
"""An independent Anthropic Message Batches + Messages mock, written from the wire notes
(../shared/providers.md §2) and Anthropic's public API reference, not from BatchKit's emulator,
with seeded faults. It keeps a ledger of what it billed, for the invariant checks of
Scripts/independent-check.py (PROVIDER=anthropic). Not used by CI.

Endpoints: POST /v1/messages/batches, GET /v1/messages/batches/{id}, GET /v1/messages/batches
(newest first, limit/after_id/before_id, has_more/first_id/last_id), POST .../{id}/cancel,
DELETE .../{id} (ended only), GET .../{id}/results (the batch's results_url, JSONL in any order),
POST /v1/messages (real time). Auth: x-api-key or Authorization: Bearer; anthropic-version required.

Faults (--fault-rate per call): 500 api_error, 529 overloaded_error, 429 with and without
retry-after, a connection reset before anything happened, a slow answer (1-4 s); on create, the
batch made and the answer lost (reset) or slow; results cut part-way; a real-time answer billed
and lost. Fates (--fate-rate per batch): the batch expires part-way (the rest `expired`).
Per item (--line-fail-rate): `errored` with api_error or overloaded_error (not billed).
A batch runs for 1-2 s (by wall time); results come shuffled.

--neighbour-count K: another client of the same account (a shard of the same input, say) creates a
batch of K requests of its own at start and every --neighbour-every seconds. Its batches are never
the run's: they are not billed to the ledger, and a cancel of one is recorded as
("foreign_cancel", id, t), which the checker counts as a violation (a run touched a job it does
not own)."""
import json, os, re, sys, threading, time, uuid
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from independent_mock_base import parse_args, Ledger, Faults, Handler, serve, rfc3339

args = parse_args(18110, extra=lambda ap: (
    ap.add_argument("--list-lag", type=float, default=0, help="seconds before a new batch shows in the list"),
    ap.add_argument("--lose-first-create", action="store_true", help="the first create's answer is lost (reset)"),
    ap.add_argument("--neighbour-count", type=int, default=0,
                    help="another client of the account (a shard of the same job, say) creates batches of this many requests"),
    ap.add_argument("--neighbour-every", type=float, default=5.0, help="seconds between the neighbour's batches (the first at start)")))
lock = threading.RLock()   # advance() runs under it and may draw from the seeded generator
faults = Faults(args.seed, args.fault_rate, lock)
ledger = Ledger(args.ledger)
batches = {}   # id -> dict
order = []     # ids, creation order
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
BASE = "http://127.0.0.1:%d" % args.port


def ledger_jobs():
    return {k: {"status": b["processing_status"], "n": len(b["items"]), "ended_at": b["ended_at"]} for k, b in batches.items()
            if not b.get("foreign")}


def err(kind, message):
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_" + uuid.uuid4().hex[:24]}


def view(b):
    c = b["counts"]
    return {"id": b["id"], "type": "message_batch", "processing_status": b["processing_status"],
            "request_counts": dict(c), "ended_at": b["ended_at"], "created_at": b["created_at"],
            "expires_at": b["expires_at"], "cancel_initiated_at": b["cancel_initiated_at"], "archived_at": None,
            "results_url": b["results_url"]}


def answer_text(params):
    """The mock's answer to a request whose last user text is `q <i>`: `echo:row-<i>`."""
    content = params["messages"][-1]["content"]
    if isinstance(content, list):
        content = "".join(x.get("text", "") for x in content if x.get("type") == "text")
    return "echo:row-" + content.split(" ", 1)[1]


def message(params):
    return {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant",
            "model": params.get("model", "claude") + "-20250929",
            "content": [{"type": "text", "text": answer_text(params)}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 7, "output_tokens": 3, "cache_creation_input_tokens": 0,
                                             "cache_read_input_tokens": 0, "service_tier": "batch"}}


def advance(b):
    """Moves a batch along by wall time: it ends after its run time (or part-way when its fate is
    to expire), and a cancel ends it 0.5 s later."""
    if b["processing_status"] == "ended":
        return
    t = time.time()
    if b["processing_status"] == "canceling":
        if t - b["cancel_t"] > 0.5:
            finish(b, t, stop=b["done_at_cancel"], why="canceled")
        return
    if b["fate"] == "expire" and t - b["t0"] > b["run"] * 0.6:
        finish(b, t, stop=int(len(b["items"]) * b["fate_part"]), why="expired")
    elif t - b["t0"] > b["run"]:
        finish(b, t, stop=len(b["items"]), why=None)


def done_so_far(b, t):
    return min(len(b["items"]), int(len(b["items"]) * max(0.0, t - b["t0"]) / b["run"]))


def finish(b, t, stop, why):
    """Ends a batch: items before `stop` (in processing order) were sent to the model (succeeded,
    billed, or errored); the others are `why` (canceled / expired)."""
    lines = []
    c = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    for i, (cid, params) in enumerate(b["items"]):
        if i >= stop:
            lines.append({"custom_id": cid, "result": {"type": why}}); c[why] += 1
        elif b["fail"][i]:
            kind = "api_error" if i % 2 else "overloaded_error"
            lines.append({"custom_id": cid, "result": {"type": "errored", "error": err(kind, "Internal server error")}})
            c["errored"] += 1
        else:
            lines.append({"custom_id": cid, "result": {"type": "succeeded", "message": message(params)}})
            c["succeeded"] += 1
            if not b.get("foreign"):
                ledger.bill(cid)
    faults.rng.shuffle(lines)   # the caller holds `lock`
    b["results"] = b"".join(json.dumps(l).encode() + b"\n" for l in lines)
    b["counts"] = c
    b["processing_status"] = "ended"
    b["ended_at"] = rfc3339(t)
    b["results_url"] = "%s/v1/messages/batches/%s/results" % (BASE, b["id"])
    if not b.get("foreign"):
        ledger.events.append(("finish", b["id"], why or "ended", c["succeeded"], t))
    ledger.save(ledger_jobs())


class H(Handler):
    def auth(self):
        key = self.headers.get("x-api-key") or (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if key != "sk-ant-indep":
            self.send(401, err("authentication_error", "invalid x-api-key")); return False
        if not self.headers.get("anthropic-version"):
            self.send(400, err("invalid_request_error", "anthropic-version: header is required")); return False
        return True

    def generic_fault(self, data_read=True):
        """A fault before the call takes effect; True when it answered (or dropped)."""
        f = faults.pick(["500", "529", "429", "429-bare", "reset", "slow", None])
        if f == "500":
            self.send(500, err("api_error", "Internal server error")); return True
        if f == "529":
            self.send(529, err("overloaded_error", "Overloaded")); return True
        if f == "429":
            self.send(429, err("rate_limit_error", "Number of requests has exceeded your rate limit"), {"retry-after": "1"}); return True
        if f == "429-bare":
            self.send(429, err("rate_limit_error", "Number of requests has exceeded your rate limit")); return True
        if f == "reset":
            self.drop(); return True
        if f == "slow":
            time.sleep(faults.uniform(1, 4))
        return False

    def route(self):
        p, _, q = self.path.partition("?")
        qs = dict(x.split("=", 1) for x in q.split("&") if "=" in x)
        return p, qs

    def send(self, code, obj, extra=None, raw=None, ctype="application/json"):
        extra = dict(extra or {})
        extra.setdefault("request-id", "req_" + uuid.uuid4().hex[:24])
        super().send(code, obj, extra, raw, ctype)

    def do_GET(self):
        p, qs = self.route()
        if p == "/_mock/ledger":
            return self.ledger_now()
        if not self.auth() or self.generic_fault():
            return
        parts = p.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["v1", "models"]:
            if not parts[2].startswith("claude-"):
                return self.send(404, err("not_found_error", "model: %s" % parts[2]))
            return self.send(200, {"type": "model", "id": parts[2], "display_name": parts[2], "created_at": "2025-09-29T00:00:00Z"})
        with lock:
            if p == "/v1/messages/batches":
                for b in batches.values():
                    advance(b)
                ids = [i for i in reversed(order) if batches[i]["t0"] <= time.time() - args.list_lag]
                lim = int(qs.get("limit", 20))
                if not 1 <= lim <= 1000:
                    return self.send(400, err("invalid_request_error", "limit: must be between 1 and 1000"))
                if "after_id" in qs:
                    ids = ids[ids.index(qs["after_id"]) + 1:] if qs["after_id"] in ids else []
                    page = ids[:lim]
                elif "before_id" in qs:
                    ids = ids[:ids.index(qs["before_id"])] if qs["before_id"] in ids else []
                    page = ids[-lim:]
                else:
                    page = ids[:lim]
                return self.send(200, {"data": [view(batches[i]) for i in page], "has_more": len(ids) > lim,
                                       "first_id": page[0] if page else None, "last_id": page[-1] if page else None})
            if len(parts) in (4, 5) and parts[:3] == ["v1", "messages", "batches"]:
                b = batches.get(parts[3])
                if not b:
                    return self.send(404, err("not_found_error", "message batch not found"))
                advance(b)
                if len(parts) == 4:
                    return self.send(200, view(b))
                if parts[4] != "results":
                    return self.send(404, err("not_found_error", "Not found"))
                if b["processing_status"] != "ended":
                    return self.send(400, err("invalid_request_error", "Message Batch %s has not yet ended" % b["id"]))
                data = b["results"]
        if p.endswith("/results"):
            if faults.pick(["cut", "500"]) == "cut" and len(data) > 100:
                return self.cut(data, "application/binary")
            return self.send(200, None, raw=data, ctype="application/binary")
        self.send(404, err("not_found_error", "Not found"))

    def do_DELETE(self):
        p, _ = self.route()
        if not self.auth() or self.generic_fault():
            return
        parts = p.strip("/").split("/")
        with lock:
            b = batches.get(parts[3]) if len(parts) == 4 and parts[:3] == ["v1", "messages", "batches"] else None
            if not b:
                return self.send(404, err("not_found_error", "message batch not found"))
            advance(b)
            if b["processing_status"] != "ended":
                return self.send(400, err("invalid_request_error", "Message Batch %s is still in progress; cancel it first" % b["id"]))
            b["deleted"] = True
            return self.send(200, {"id": b["id"], "type": "message_batch_deleted"})

    def do_POST(self):
        self.arrived = time.time()   # before any slow fault: a kill after it finds the request in flight
        p, _ = self.route()
        data = self.body()
        if p == "/_mock/ledger":
            return self.ledger_now()
        if not self.auth() or self.generic_fault():
            return
        if p == "/v1/messages/batches":
            return self.create(data)
        if p == "/v1/messages":
            return self.realtime(data)
        parts = p.strip("/").split("/")
        if len(parts) == 5 and parts[:3] == ["v1", "messages", "batches"] and parts[4] == "cancel":
            with lock:
                b = batches.get(parts[3])
                if not b:
                    return self.send(404, err("not_found_error", "message batch not found"))
                advance(b)
                if b["processing_status"] == "in_progress":
                    t = time.time()
                    b["processing_status"] = "canceling"; b["cancel_t"] = t; b["cancel_initiated_at"] = rfc3339(t)
                    # Requests already sent to the model finish; the rest are canceled.
                    b["done_at_cancel"] = done_so_far(b, t)
                    ledger.events.append(("foreign_cancel" if b.get("foreign") else "cancel", b["id"], t)); ledger.save(ledger_jobs())
                    return self.send(200, view(b))
                if b["processing_status"] == "canceling":
                    return self.send(200, view(b))
                return self.send(400, err("invalid_request_error", "Message Batch %s has already ended" % b["id"]))
        self.send(404, err("not_found_error", "Not found"))

    def create(self, data):
        try:
            req = json.loads(data)
            requests = req["requests"]
        except (ValueError, KeyError, TypeError):
            return self.send(400, err("invalid_request_error", "requests: Field required"))
        if len(data) > 256 * 1024 * 1024:
            return self.send(413, err("request_too_large", "Request exceeds the maximum allowed number of bytes"))
        if not isinstance(requests, list) or not 1 <= len(requests) <= 100000:
            return self.send(400, err("invalid_request_error", "requests: must hold 1 to 100000 items"))
        seen = set()
        items = []
        for i, r in enumerate(requests):
            cid = r.get("custom_id") if isinstance(r, dict) else None
            params = r.get("params") if isinstance(r, dict) else None
            if not isinstance(cid, str) or not CUSTOM_ID.match(cid):
                return self.send(400, err("invalid_request_error", "requests.%d.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'" % i))
            if cid in seen:
                return self.send(400, err("invalid_request_error", "requests.%d.custom_id: duplicate custom_id %s" % (i, cid)))
            seen.add(cid)
            if not isinstance(params, dict) or not params.get("model") or not isinstance(params.get("messages"), list):
                return self.send(400, err("invalid_request_error", "requests.%d.params: model and messages are required" % i))
            if not isinstance(params.get("max_tokens"), int) or params["max_tokens"] < 1:
                return self.send(400, err("invalid_request_error", "requests.%d.params.max_tokens: must be at least 1" % i))
            if params.get("stream"):
                return self.send(400, err("invalid_request_error", "requests.%d.params.stream: streaming is not supported in batches" % i))
            items.append((cid, params))
        t = time.time()
        with lock:
            bid = "msgbatch_01" + uuid.uuid4().hex[:22]
            fate = "expire" if faults.rng.random() < args.fate_rate else None
            b = {"id": bid, "items": items, "t0": t, "run": 1.0 + faults.rng.random() + len(items) / 100000,
                 "fate": fate, "fate_part": faults.rng.uniform(0.2, 0.9),
                 "fail": [faults.rng.random() < args.line_fail_rate for _ in items],
                 "processing_status": "in_progress", "created_at": rfc3339(t), "expires_at": rfc3339(t + 86400),
                 "ended_at": None, "cancel_initiated_at": None, "results_url": None,
                 "counts": {"processing": len(items), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}}
            batches[bid] = b; order.append(bid)
            ledger.events.append(("create", bid, len(items), t)); ledger.save(ledger_jobs())
            answer = view(b)
        return self.answer_create(bid, answer, faults, ledger, lock, args.lose_first_create)

    def realtime(self, data):
        params = json.loads(data)
        if not params.get("model") or not isinstance(params.get("max_tokens"), int) or not params.get("messages"):
            return self.send(400, err("invalid_request_error", "model, max_tokens and messages are required"))
        msg = message(params)
        cid = msg["content"][0]["text"][len("echo:"):]
        t = time.time()
        with lock:
            ledger.bill(cid)
            ledger.events.append(("realtime", cid, t, self.arrived))
        if faults.pick(["lost"], rate=args.fault_rate / 5) == "lost":
            with lock:
                ledger.events.append(("realtime_lost", cid, t))
            return self.drop()
        reset = rfc3339(time.time() + 1, 0)
        self.send(200, msg, {"anthropic-ratelimit-requests-limit": "4000", "anthropic-ratelimit-requests-remaining": "3999",
                             "anthropic-ratelimit-requests-reset": reset, "anthropic-ratelimit-tokens-limit": "400000",
                             "anthropic-ratelimit-tokens-remaining": "399000", "anthropic-ratelimit-tokens-reset": reset})

    def ledger_now(self):
        """Mock-only: advances every batch by wall time, writes the ledger, and names the batches
        that have not ended (the checker's "every job ended")."""
        with lock:
            for b in batches.values():
                advance(b)
            ledger.save(ledger_jobs())
            open_ = [k for k, b in batches.items() if b["processing_status"] != "ended" and not b.get("foreign")]
            counts = dict(faults.count)
        self.send(200, {"nonterminal": open_, "faults": counts})


def neighbour():
    """Another client's batches of --neighbour-count requests (ids `nb<k>-<i>`), never the run's."""
    k = 0
    while True:
        t = time.time()
        with lock:
            bid = "msgbatch_01" + uuid.uuid4().hex[:22]
            items = [("nb%d-%d" % (k, i), {"model": "claude-haiku-4-5", "max_tokens": 5,
                                          "messages": [{"role": "user", "content": "q nb%d-%d" % (k, i)}]})
                     for i in range(args.neighbour_count)]
            batches[bid] = {"id": bid, "items": items, "t0": t, "run": 20.0, "fate": None, "fate_part": 1.0,
                            "fail": [False] * len(items), "processing_status": "in_progress", "created_at": rfc3339(t),
                            "expires_at": rfc3339(t + 86400), "ended_at": None, "cancel_initiated_at": None,
                            "results_url": None, "foreign": True,
                            "counts": {"processing": len(items), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}}
            order.append(bid)
        k += 1
        time.sleep(args.neighbour_every)


if args.neighbour_count > 0:
    threading.Thread(target=neighbour, daemon=True).start()
serve(args.port, H)

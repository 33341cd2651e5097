#!/usr/bin/env python3
"""An independent Gemini Batch + Files + generateContent mock, written from the wire notes
(../shared/providers.md §3) and Google's public API reference (ai.google.dev/api/batch-mode,
ai.google.dev/api/files), not from BatchKit's emulator, with seeded faults. It keeps a ledger of
what it billed, for the invariant checks of Scripts/independent-check.py (PROVIDER=gemini). Not
used by CI.

Endpoints, under both /v1beta and /v1: POST /upload/{v}/files (resumable: `start` hands out an
x-goog-upload-url; `upload` and `upload, finalize` send bytes at X-Goog-Upload-Offset; `query`),
POST /{v}/models/{model}:batchGenerateContent (inline `requests` or an uploaded `fileName`; the
answer is an Operation without `done`), GET /{v}/batches/{id}, GET /{v}/batches (pageSize,
pageToken, newest first, no inline results), POST /{v}/batches/{id}:cancel, DELETE
/{v}/batches/{id}, GET /download/{v}/files/{id}:download?alt=media and /{v}/files/{id}:download
(generated files only), GET/DELETE /{v}/files/{id}, POST /{v}/models/{model}:generateContent.
Auth: x-goog-api-key or ?key=, except on the upload URL (its upload_id is the authorisation).

Faults (--fault-rate per call): 500 INTERNAL, 503 UNAVAILABLE, 429 RESOURCE_EXHAUSTED with and
without RetryInfo, a reset before anything happened, a slow answer (1-4 s); on create and on the
upload finalize, the effect kept and the answer lost (reset) or slow; a result download or a done
Operation (inline results) cut part-way; a real-time answer billed and lost. Fates (--fate-rate per
batch): BATCH_STATE_EXPIRED (no results, nothing billed) or BATCH_STATE_FAILED (nothing billed).
Per item (--line-fail-rate): an `error` Status (code 13 or 14, not billed). A cancelled batch ends
BATCH_STATE_CANCELLED 0.5 s later with the output of the requests done before the cancel (billed;
the reference does not say whether a cancelled batch keeps partial output, this mock assumes the
costlier case). Results come in input order as documented, except in a third of the batches,
shuffled (a client must join on the key; the docs promise order, so this is stricter than them)."""
import hashlib, base64, json, os, sys, threading, time, uuid
from urllib.parse import unquote, parse_qs
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from independent_mock_base import parse_args, Ledger, Faults, Handler, serve, rfc3339

args = parse_args(18120, extra=lambda ap: (
    ap.add_argument("--list-order", choices=["newest", "oldest"], default="newest",
                    help="batches.list order; the reference does not say which (the client assumes newest first)"),
    ap.add_argument("--preexisting", type=int, default=0, help="ended batches in the account before the run"),
    ap.add_argument("--lose-first-create", action="store_true", help="the first create's answer is lost (reset)"),
    ap.add_argument("--list-lag", type=float, default=0, help="seconds before a new batch shows in batches.list")))
lock = threading.RLock()   # advance() runs under it and may draw from the seeded generator
faults = Faults(args.seed, args.fault_rate, lock)
ledger = Ledger(args.ledger)
files = {}     # "files/<id>" -> dict(bytes, meta, generated)
uploads = {}   # upload_id -> dict(size, ctype, display, data, file)
batches = {}   # "batches/<id>" -> dict
order = []
BASE = "http://127.0.0.1:%d" % args.port
TERMINAL = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")
INLINE_LIMIT = 20_000_000


def ledger_jobs():
    return {k: {"status": b["state"], "n": len(b["items"]), "input": b["input"]} for k, b in batches.items() if not b.get("foreign")}


def gerr(code, status, message, details=None):
    e = {"code": code, "message": message, "status": status}
    if details:
        e["details"] = details
    return {"error": e}


def rid(n=36):
    return uuid.uuid4().hex[:n] if n <= 32 else (uuid.uuid4().hex + uuid.uuid4().hex)[:n]


def answer(request):
    """`echo:row-<i>` for a request whose last text is `q <i> ...`."""
    text = "".join(p.get("text", "") for p in request["contents"][-1]["parts"])
    return "echo:row-" + text.split()[1]


def gc_response(request):
    return {"candidates": [{"content": {"parts": [{"text": answer(request)}], "role": "model"}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3, "totalTokenCount": 10,
                              "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 7}]},
            "modelVersion": "gemini-2.5-flash", "responseId": rid(24)}


def file_resource(name, f):
    r = {"name": name, "mimeType": f["mime"], "sizeBytes": str(len(f["bytes"])), "createTime": f["created"],
         "updateTime": f["created"], "expirationTime": rfc3339(f["t"] + 48 * 3600),
         "sha256Hash": base64.b64encode(hashlib.sha256(f["bytes"]).hexdigest().encode()).decode(),
         "uri": "%s/v1beta/%s" % (BASE, name), "state": "ACTIVE", "source": "GENERATED" if f["generated"] else "UPLOADED"}
    if f.get("display"):
        r["displayName"] = f["display"]
    return r


def operation(b, listed=False):
    stats = {"requestCount": str(len(b["items"]))}
    for k in ("successfulRequestCount", "failedRequestCount", "pendingRequestCount"):
        if b["stats"].get(k):
            stats[k] = str(b["stats"][k])
    meta = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": b["model"], "displayName": b["display"], "createTime": b["created"], "updateTime": b["updated"],
            "batchStats": stats, "state": b["state"], "name": b["name"]}
    if b["input"]:
        meta["inputConfig"] = {"fileName": b["input"]}
    op = {"name": b["name"], "metadata": meta}
    if b["state"] in TERMINAL:
        op["done"] = True
        meta["endTime"] = b["updated"]
        out = None
        if b["output_file"]:
            out = {"responsesFile": b["output_file"]}
        elif b["inline_out"] is not None and not listed:
            out = {"inlinedResponses": {"inlinedResponses": b["inline_out"]}}
        if out is not None:
            meta["output"] = out
        if b["state"] == "BATCH_STATE_SUCCEEDED" and out is not None:
            op["response"] = dict(out, **{"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"})
        elif b["state"] == "BATCH_STATE_FAILED":
            op["error"] = {"code": 13, "message": "Batch failed: internal error."}
        elif b["state"] == "BATCH_STATE_CANCELLED":
            op["error"] = {"code": 1, "message": "Batch was cancelled."}
    return op


def advance(b):
    if b["state"] in TERMINAL:
        return
    t = time.time()
    if b["state"] == "BATCH_STATE_CANCELLING" or b.get("cancel_t"):
        if t - b["cancel_t"] > 0.5:
            finish(b, t, "BATCH_STATE_CANCELLED", stop=b["done_at_cancel"])
        return
    if b["state"] == "BATCH_STATE_PENDING" and t - b["t0"] > 0.3:
        b["state"] = "BATCH_STATE_RUNNING"; b["updated"] = rfc3339(t, 9)
    if b["fate"] and t - b["t0"] > b["run"] * 0.6:
        finish(b, t, b["fate"], stop=0)
    elif t - b["t0"] > b["run"]:
        finish(b, t, "BATCH_STATE_SUCCEEDED", stop=len(b["items"]))


def done_so_far(b, t):
    return min(len(b["items"]), int(len(b["items"]) * max(0.0, t - b["t0"] - 0.3) / b["run"]))


def finish(b, t, state, stop):
    """Ends a batch; the first `stop` items ran (succeeded and billed, or errored). Expired and
    failed batches have no output; a cancelled one has the output of the items that ran."""
    rows = []
    ok = bad = 0
    for i, (key, request) in enumerate(b["items"][:stop]):
        if b["fail"][i]:
            rows.append((key, None, {"code": 13 if i % 2 else 14, "message": "Internal error encountered."})); bad += 1
        else:
            rows.append((key, gc_response(request), None)); ok += 1
            ledger.bill(key)
    if b["shuffle"]:
        faults.rng.shuffle(rows)   # the caller holds `lock`
    b["state"] = state
    b["updated"] = rfc3339(t, 9)
    b["stats"] = {"successfulRequestCount": ok, "failedRequestCount": bad,
                  "pendingRequestCount": 0}
    if state in ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_CANCELLED"):
        if b["input"]:
            lines = []
            for key, resp, e in rows:
                lines.append(json.dumps({"key": key, "response": resp} if resp else {"key": key, "error": e}).encode() + b"\n")
            name = "files/batch-" + b["name"].split("/")[1]
            files[name] = {"bytes": b"".join(lines), "mime": "application/jsonl", "created": rfc3339(t), "t": t,
                           "generated": True, "display": None}
            b["output_file"] = name
        else:
            b["inline_out"] = [dict({"response": resp} if resp else {"error": e}, metadata={"key": key}) for key, resp, e in rows]
    ledger.events.append(("finish", b["name"], state, ok, t))
    ledger.save(ledger_jobs())


class H(Handler):
    def parsed(self):
        p, _, q = self.path.partition("?")
        return unquote(p), {k: v[0] for k, v in parse_qs(q).items()}

    def authed(self, qs):
        key = self.headers.get("x-goog-api-key") or qs.get("key")
        if key != "gm-indep":
            self.send(400, gerr(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                                [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                  "domain": "googleapis.com"}]))
            return False
        return True

    def generic_fault(self):
        f = faults.pick(["500", "503", "429", "429-bare", "reset", "slow", None])
        if f == "500":
            self.send(500, gerr(500, "INTERNAL", "An internal error has occurred.")); return True
        if f == "503":
            self.send(503, gerr(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")); return True
        if f == "429":
            self.send(429, gerr(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota. Please retry in 1.2s.",
                                [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.2s"}])); return True
        if f == "429-bare":
            self.send(429, gerr(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")); return True
        if f == "reset":
            self.drop(); return True
        if f == "slow":
            time.sleep(faults.uniform(1, 4))
        return False

    @staticmethod
    def version_path(p, prefix=""):
        """`/{prefix}v1beta/rest` or `/{prefix}v1/rest` -> rest, else None."""
        for v in ("v1beta", "v1"):
            head = "/" + prefix + v + "/"
            if p.startswith(head):
                return p[len(head):]
        return None

    def do_GET(self):
        p, qs = self.parsed()
        if p == "/_mock/ledger":
            return self.ledger_now()
        if not self.authed(qs) or self.generic_fault():
            return
        dl = self.version_path(p, "download/")
        rest = dl if dl is not None else self.version_path(p)
        if rest is None:
            return self.send(404, gerr(404, "NOT_FOUND", "Not found: " + p))
        if rest.startswith("files/") and rest.endswith(":download"):
            with lock:
                f = files.get(rest[: -len(":download")])
                if not f:
                    return self.send(404, gerr(404, "NOT_FOUND", "File not found."))
                if not f["generated"]:
                    return self.send(400, gerr(400, "INVALID_ARGUMENT", "Only generated files can be downloaded."))
                data = f["bytes"]
            if faults.pick(["cut"]) == "cut" and len(data) > 100:
                return self.cut(data, "application/octet-stream")
            return self.send(200, None, raw=data, ctype="application/octet-stream")
        if rest.startswith("models/") and "/" not in rest[len("models/"):] and ":" not in rest:
            if not rest.startswith("models/gemini-"):
                return self.send(404, gerr(404, "NOT_FOUND", "models/%s is not found for API version v1beta" % rest))
            return self.send(200, {"name": rest, "version": "001", "displayName": rest, "inputTokenLimit": 1048576,
                                   "outputTokenLimit": 65536, "supportedGenerationMethods": ["generateContent", "batchGenerateContent"]})
        with lock:
            if rest.startswith("files/"):
                f = files.get(rest)
                return self.send(200, file_resource(rest, f)) if f else self.send(404, gerr(404, "NOT_FOUND", "File not found."))
            if rest == "batches":
                for b in batches.values():
                    advance(b)
                lag_cut = time.time() - args.list_lag
                names = [n for n in order if batches[n]["t0"] <= lag_cut]
                names = list(reversed(names)) if args.list_order == "newest" else names
                size = int(qs.get("pageSize", 50))
                size = min(max(size, 1), 1000)
                start = int(qs["pageToken"].removeprefix("p")) if qs.get("pageToken") else 0
                page = names[start:start + size]
                body = {"operations": [operation(batches[n], listed=True) for n in page]}
                if start + size < len(names):
                    body["nextPageToken"] = "p%d" % (start + size)
                return self.send(200, body)
            if rest.startswith("batches/"):
                b = batches.get(rest)
                if not b:
                    return self.send(404, gerr(404, "NOT_FOUND", "Batch not found: " + rest))
                advance(b)
                data = json.dumps(operation(b)).encode()
        if b["inline_out"] is not None and faults.pick(["cut"]) == "cut":
            return self.cut(data)
        self.send(200, None, raw=data)

    def do_DELETE(self):
        p, qs = self.parsed()
        if not self.authed(qs) or self.generic_fault():
            return
        rest = self.version_path(p) or ""
        with lock:
            if rest.startswith("batches/") and rest in batches:
                b = batches[rest]
                advance(b)
                b["deleted"] = True   # the record only (the reference: delete does not cancel)
                order.remove(rest) if rest in order else None
                return self.send(200, {})
            if rest.startswith("files/") and rest in files:
                del files[rest]
                return self.send(200, {})
        self.send(404, gerr(404, "NOT_FOUND", "Not found: " + p))

    def do_POST(self):
        self.arrived = time.time()   # before any slow fault: a kill after it finds the request in flight
        p, qs = self.parsed()
        data = self.body()
        if p == "/_mock/ledger":
            return self.ledger_now()
        up = self.version_path(p, "upload/")
        if up == "files" and qs.get("upload_id"):
            return self.upload_bytes(qs["upload_id"], data)   # no key: the upload id authorises
        if not self.authed(qs) or self.generic_fault():
            return
        if up == "files":
            return self.upload_start(data)
        rest = self.version_path(p)
        if rest is None:
            return self.send(404, gerr(404, "NOT_FOUND", "Not found: " + p))
        if rest.startswith("models/") and rest.endswith(":batchGenerateContent"):
            return self.create(rest[: -len(":batchGenerateContent")], data)
        if rest.startswith("models/") and rest.endswith(":generateContent"):
            return self.realtime(data)
        if rest.startswith("batches/") and rest.endswith(":cancel"):
            with lock:
                b = batches.get(rest[: -len(":cancel")])
                if not b:
                    return self.send(404, gerr(404, "NOT_FOUND", "Batch not found."))
                advance(b)
                if b["state"] in TERMINAL:
                    return self.send(400, gerr(400, "FAILED_PRECONDITION", "Batch is already in a terminal state."))
                if not b.get("cancel_t"):
                    t = time.time()
                    b["cancel_t"] = t; b["done_at_cancel"] = done_so_far(b, t)
                    ledger.events.append(("cancel", b["name"], t)); ledger.save(ledger_jobs())
                return self.send(200, {})
        self.send(404, gerr(404, "NOT_FOUND", "Not found: " + p))

    # Resumable upload

    def upload_start(self, data):
        h = self.headers
        if (h.get("X-Goog-Upload-Protocol") or "").lower() != "resumable" or (h.get("X-Goog-Upload-Command") or "").lower() != "start":
            return self.send(400, gerr(400, "INVALID_ARGUMENT", "expected X-Goog-Upload-Protocol: resumable and X-Goog-Upload-Command: start"))
        try:
            size = int(h.get("X-Goog-Upload-Header-Content-Length"))
        except (TypeError, ValueError):
            size = None
        try:
            display = (json.loads(data or b"{}").get("file") or {}).get("displayName") or (json.loads(data or b"{}").get("file") or {}).get("display_name")
        except ValueError:
            return self.send(400, gerr(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
        upload_id = "AU" + rid(30)
        with lock:
            uploads[upload_id] = {"size": size, "mime": h.get("X-Goog-Upload-Header-Content-Type") or "application/octet-stream",
                                  "display": display, "data": bytearray(), "file": None}
        url = "%s%s?upload_id=%s&upload_protocol=resumable" % (BASE, self.path.partition("?")[0], upload_id)
        self.send(200, None, {"x-goog-upload-url": url, "x-goog-upload-status": "active",
                              "x-goog-upload-chunk-granularity": "8388608"}, raw=b"")

    def upload_bytes(self, upload_id, data):
        cmd = [c.strip() for c in (self.headers.get("X-Goog-Upload-Command") or "").lower().split(",")]
        with lock:
            u = uploads.get(upload_id)
        if not u:
            return self.send(404, gerr(404, "NOT_FOUND", "Unknown upload id."))
        if self.generic_fault():
            return
        with lock:
            if u["file"]:   # finalized already: the same answer again
                return self.send(200, {"file": file_resource(u["file"], files[u["file"]])}, {"x-goog-upload-status": "final"})
            if cmd == ["query"]:
                return self.send(200, None, {"x-goog-upload-status": "active", "x-goog-upload-size-received": str(len(u["data"]))}, raw=b"")
            try:
                offset = int(self.headers.get("X-Goog-Upload-Offset"))
            except (TypeError, ValueError):
                return self.send(400, gerr(400, "INVALID_ARGUMENT", "X-Goog-Upload-Offset is required."))
            if offset != len(u["data"]):
                return self.send(400, gerr(400, "INVALID_ARGUMENT", "offset %d, but %d bytes were received" % (offset, len(u["data"]))))
            if "upload" not in cmd:
                return self.send(400, gerr(400, "INVALID_ARGUMENT", "unknown X-Goog-Upload-Command"))
            u["data"] += data
            if "finalize" not in cmd:
                return self.send(200, None, {"x-goog-upload-status": "active", "x-goog-upload-size-received": str(len(u["data"]))}, raw=b"")
            if u["size"] is not None and u["size"] != len(u["data"]):
                return self.send(400, gerr(400, "INVALID_ARGUMENT", "declared %d bytes, received %d" % (u["size"], len(u["data"]))))
            t = time.time()
            name = "files/" + rid(12)
            files[name] = {"bytes": bytes(u["data"]), "mime": u["mime"], "created": rfc3339(t), "t": t, "generated": False,
                           "display": u["display"]}
            u["file"] = name
            body = {"file": file_resource(name, files[name])}
        f = faults.pick(["lost", "slow"])
        if f == "lost":
            with lock:
                ledger.events.append(("upload_lost", name, time.time()))
            return self.drop()
        if f == "slow":
            time.sleep(faults.uniform(1, 4))
        self.send(200, body, {"x-goog-upload-status": "final"})

    # Batches

    def create(self, model, data):
        try:
            req = json.loads(data)
            batch = req["batch"]
            cfg = batch.get("inputConfig") or batch.get("input_config") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            return self.send(400, gerr(400, "INVALID_ARGUMENT", "Invalid JSON payload received: batch is required."))
        inline = (cfg.get("requests") or {}).get("requests")
        fname = cfg.get("fileName") or cfg.get("file_name")
        if (inline is None) == (fname is None):
            return self.send(400, gerr(400, "INVALID_ARGUMENT", "exactly one of input_config.requests and input_config.file_name must be set"))
        items = []
        if inline is not None:
            if len(data) >= INLINE_LIMIT:
                return self.send(400, gerr(400, "INVALID_ARGUMENT", "Request payload size exceeds the limit: 20000000 bytes."))
            for i, r in enumerate(inline):
                key = (r.get("metadata") or {}).get("key")
                if not isinstance(r.get("request"), dict) or not r["request"].get("contents"):
                    return self.send(400, gerr(400, "INVALID_ARGUMENT", "requests[%d].request.contents is required" % i))
                items.append((key, r["request"]))
        else:
            with lock:
                f = files.get(fname)
            if not f:
                return self.send(404, gerr(404, "NOT_FOUND", "File %s not found." % fname))
            for n, line in enumerate(f["bytes"].split(b"\n")):
                if not line.strip():
                    continue
                try:
                    o = json.loads(line)
                except ValueError:
                    return self.send(400, gerr(400, "INVALID_ARGUMENT", "line %d of %s is not JSON" % (n + 1, fname)))
                if not isinstance(o.get("request"), dict) or not o["request"].get("contents"):
                    return self.send(400, gerr(400, "INVALID_ARGUMENT", "line %d: request.contents is required" % (n + 1)))
                items.append((o.get("key"), o["request"]))
            if not items:
                return self.send(400, gerr(400, "INVALID_ARGUMENT", "The input file %s is empty." % fname))
        t = time.time()
        with lock:
            name = "batches/" + rid(36)
            r = faults.rng.random()
            fate = "BATCH_STATE_EXPIRED" if r < args.fate_rate * 0.6 else "BATCH_STATE_FAILED" if r < args.fate_rate else None
            b = {"name": name, "model": model, "display": batch.get("displayName") or batch.get("display_name") or "",
                 "items": items, "input": fname, "t0": t, "run": 1.0 + faults.rng.random() + len(items) / 100000,
                 "fate": fate, "fail": [faults.rng.random() < args.line_fail_rate for _ in items],
                 "shuffle": faults.rng.random() < 1 / 3, "state": "BATCH_STATE_PENDING", "created": rfc3339(t, 9),
                 "updated": rfc3339(t, 9), "stats": {"pendingRequestCount": len(items)}, "output_file": None, "inline_out": None}
            batches[name] = b; order.append(name)
            ledger.events.append(("create", name, len(items), t)); ledger.save(ledger_jobs())
            body = operation(b)
        return self.answer_create(name, body, faults, ledger, lock, args.lose_first_create)

    def realtime(self, data):
        try:
            request = json.loads(data)
            text = answer(request)
        except (ValueError, KeyError, IndexError, TypeError):
            return self.send(400, gerr(400, "INVALID_ARGUMENT", "contents is required"))
        cid = text[len("echo:"):]
        t = time.time()
        with lock:
            ledger.bill(cid)
            ledger.events.append(("realtime", cid, t, self.arrived))
        if faults.pick(["lost"], rate=args.fault_rate / 5) == "lost":
            with lock:
                ledger.events.append(("realtime_lost", cid, t))
            return self.drop()
        self.send(200, gc_response(request))

    def ledger_now(self):
        """Mock-only: advances every batch by wall time, writes the ledger, and names the batches
        that have not ended (the checker's "every job ended")."""
        with lock:
            for b in batches.values():
                advance(b)
            ledger.save(ledger_jobs())
            open_ = [k for k, b in batches.items() if b["state"] not in TERMINAL]
            counts = dict(faults.count)
        self.send(200, {"nonterminal": open_, "faults": counts})


for i in range(args.preexisting):
    # Someone else's ended batches, older than the run (not in the ledger's jobs: never the run's).
    t0 = time.time() - 86400 + i
    name = "batches/old%033d" % i
    batches[name] = {"name": name, "model": "models/gemini-2.5-flash", "display": "someone-else-%d" % i, "items": [],
                     "input": None, "t0": t0, "run": 1, "fate": None, "fail": [], "shuffle": False,
                     "state": "BATCH_STATE_SUCCEEDED", "created": rfc3339(t0, 9), "updated": rfc3339(t0 + 60, 9),
                     "stats": {}, "output_file": None, "inline_out": [], "foreign": True}
    order.append(name)

serve(args.port, H)

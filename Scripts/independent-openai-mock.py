#!/usr/bin/env python3
"""An independent OpenAI Files + Batches + Chat Completions mock, written from the wire notes
(../shared/providers.md), not from BatchKit's emulator, with seeded faults. It keeps a ledger of
what it billed, for invariant checks by Scripts/independent-check.py. Not used by CI.

Faults (rate --fault-rate): 500/503 answers, 429 with retry-after, a create whose answer is
lost after the batch was made (connection closed), an upload stored and answer lost, a content
download cut part-way. Batches move validating -> in_progress -> finalizing -> completed by wall
time; output lines come in random order; a few lines fail with 500 in the error file (not billed).

Options that are off by default (the checker's earlier runs are unchanged):
  --fate-rate P        share of batches that expire part-way (`expired`: what ran is in the output
                       file and billed, the rest `batch_expired` in the error file) or fail at
                       validation (`failed`, errors.data `token_limit_exceeded`, nothing billed)
  --list-lag S         a new batch shows in GET /v1/batches only S seconds after its creation
  --lose-first-create  the first create's answer is lost (the batch exists)
  --busy-every S       another client of the account creates a batch every S seconds (ended at
                       once, never the run's): the run's jobs sink below the first page of the list
List pages hold at most 100 batches (`limit` 1-100, default 20), as the reference says.
"""
import argparse, json, random, threading, time, uuid, sys, os
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=18050)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--fault-rate", type=float, default=0.1)
ap.add_argument("--line-fail-rate", type=float, default=0.01)
ap.add_argument("--ledger", default="/tmp/indep/ledger.json")
ap.add_argument("--fate-rate", type=float, default=0.0)
ap.add_argument("--list-lag", type=float, default=0.0)
ap.add_argument("--lose-first-create", action="store_true")
ap.add_argument("--busy-every", type=float, default=0.0)
args = ap.parse_args()
answered_a_create = [False]

rng = random.Random(args.seed)
lock = threading.Lock()
files = {}      # id -> dict(bytes, purpose, filename, created)
batches = {}    # id -> dict
order = []      # batch ids, creation order
billed = {}     # custom_id -> count of 200 results produced (billed)
events = []     # ("create", batch_id, n) etc.
NOW = lambda: int(time.time())


def save_ledger():
    with open(args.ledger + ".tmp", "w") as f:
        json.dump({"billed": billed, "events": events,
                   "batches": {k: {kk: v[kk] for kk in ("status", "ids_count", "metadata")} for k, v in batches.items()
                               if not v.get("foreign")}}, f)
    os.replace(args.ledger + ".tmp", args.ledger)


def fault(kinds):
    with lock:
        if rng.random() < args.fault_rate:
            return rng.choice(kinds)
    return None


def batch_view(b):
    keys = ["id", "object", "endpoint", "errors", "input_file_id", "completion_window", "status",
            "output_file_id", "error_file_id", "created_at", "in_progress_at", "expires_at",
            "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
            "cancelled_at", "request_counts", "metadata", "model"]
    return {k: b.get(k) for k in keys}


def advance(b):
    """Moves a batch along by wall time; runs its lines when it finalizes."""
    t = time.time()
    age = t - b["t0"]
    if b.get("foreign"):
        return
    if b["status"] == "validating" and age > 0.3 and b.get("fate") == "fail":
        b["status"] = "failed"; b["failed_at"] = NOW()
        b["errors"] = {"object": "list", "data": [{"code": "token_limit_exceeded", "line": None, "param": None,
                       "message": "Enqueued token limit reached for gpt-4o-mini in organization org-mock. Limit: 2,000,000 enqueued tokens. Please try again once some in_progress batches have been completed."}]}
        events.append(("finish", b["id"], "failed", 0, time.time()))
        save_ledger()
        return
    if b["status"] == "in_progress" and b.get("fate") == "expire" and age > 0.3 + 0.7 * b["fate_part"]:
        finish(b, cancelled=False, expired_after=int(b["ids_count"] * b["fate_part"]))
        return
    if b["status"] == "validating" and age > 0.3:
        b["status"] = "in_progress"; b["in_progress_at"] = NOW()
        b["request_counts"]["total"] = b["ids_count"]
    if b["status"] == "in_progress" and age > 1.0 + b["ids_count"] / 100000:
        b["status"] = "finalizing"; b["finalizing_at"] = NOW()
    if b["status"] == "finalizing" and age > 1.3 + b["ids_count"] / 100000:
        finish(b, cancelled=False)
    if b["status"] == "cancelling" and t - b["cancel_t"] > 0.5:
        finish(b, cancelled=True)


def finish(b, cancelled, expired_after=None):
    lines = [json.loads(l) for l in files[b["input_file_id"]]["bytes"].split(b"\n") if l.strip()]
    out, err = [], []
    for i, line in enumerate(lines):
        cid = line["custom_id"]
        if expired_after is not None and i >= expired_after:
            err.append({"id": "batch_req_" + uuid.uuid4().hex[:12], "custom_id": cid, "response": None,
                        "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
            continue
        if cancelled and (i % 2 == 1):
            err.append({"id": "batch_req_" + uuid.uuid4().hex[:12], "custom_id": cid, "response": None,
                        "error": {"code": "batch_cancelled", "message": "cancelled"}})
            continue
        if rng.random() < args.line_fail_rate:
            err.append({"id": "batch_req_" + uuid.uuid4().hex[:12], "custom_id": cid,
                        "response": {"status_code": 500, "request_id": "req_x", "body": {"error": {
                            "message": "The server had an error", "type": "server_error", "param": None, "code": None}}},
                        "error": None})
            continue
        billed[cid] = billed.get(cid, 0) + 1
        out.append({"id": "batch_req_" + uuid.uuid4().hex[:12], "custom_id": cid, "response": {
            "status_code": 200, "request_id": "req_" + uuid.uuid4().hex[:8], "body": {
                "id": "chatcmpl-" + uuid.uuid4().hex[:8], "object": "chat.completion", "created": NOW(),
                "model": line["body"].get("model", "gpt-4o-mini") + "-2024-07-18",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "echo:" + cid, "refusal": None},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
                "system_fingerprint": "fp_mock"}}, "error": None})
    rng.shuffle(out); rng.shuffle(err)
    for name, rows in (("output_file_id", out), ("error_file_id", err)):
        if rows:
            fid = "file-" + uuid.uuid4().hex[:20]
            files[fid] = {"bytes": b"".join(json.dumps(r).encode() + b"\n" for r in rows), "purpose": "batch_output",
                          "filename": fid + ".jsonl", "created": NOW()}
            b[name] = fid
        else:
            b[name] = None
    b["request_counts"]["completed"] = len(out); b["request_counts"]["failed"] = len(err)
    b["status"] = "cancelled" if cancelled else "expired" if expired_after is not None else "completed"
    b[b["status"] + "_at"] = NOW()
    events.append(("finish", b["id"], b["status"], len(out), time.time()))
    save_ledger()


def err_body(msg, typ="invalid_request_error", code=None):
    return {"error": {"message": msg, "type": typ, "param": None, "code": code}}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        if os.environ.get("MOCK_LOG"):
            sys.stderr.write("%.3f %s\n" % (time.time(), fmt % a)); sys.stderr.flush()

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size); self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, code, obj, extra=None, raw=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex[:8])
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def drop(self):
        if os.environ.get("MOCK_LOG"):
            sys.stderr.write("%.3f DROP %s %s\n" % (time.time(), self.command, self.path)); sys.stderr.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def generic_fault(self):
        f = fault(["500", "503", "429", None, None])
        if f == "500":
            self.send(500, err_body("The server had an error while processing your request.", "server_error")); return True
        if f == "503":
            self.send(503, err_body("The engine is currently overloaded.", "server_error")); return True
        if f == "429":
            self.send(429, err_body("Rate limit reached.", "requests", "rate_limit_exceeded"),
                      {"retry-after": "1", "x-ratelimit-reset-requests": "1s"}); return True
        return False

    def auth(self):
        if self.headers.get("Authorization") != "Bearer sk-indep":
            self.send(401, err_body("Incorrect API key provided.", code="invalid_api_key")); return False
        return True

    def do_GET(self):
        b = None
        if not self.auth():
            return
        if self.generic_fault():
            return
        p, _, q = self.path.partition("?")
        qs = dict(x.split("=", 1) for x in q.split("&") if "=" in x)
        with lock:
            if p.startswith("/v1/models/"):
                m = p[len("/v1/models/"):]
                return self.send(200, {"id": m, "object": "model", "created": 1700000000, "owned_by": "system"})
            if p == "/v1/batches":
                for b in batches.values():
                    advance(b)
                lag_cut = time.time() - args.list_lag
                ids = [i for i in reversed(order) if batches[i]["t0"] <= lag_cut]
                if "after" in qs:
                    ids = ids[ids.index(qs["after"]) + 1:] if qs["after"] in ids else []
                lim = min(max(int(qs.get("limit", 20)), 1), 100); page = ids[:lim]
                return self.send(200, {"object": "list", "data": [batch_view(batches[i]) for i in page],
                                       "first_id": page[0] if page else None, "last_id": page[-1] if page else None,
                                       "has_more": len(ids) > lim})
            if p.startswith("/v1/batches/"):
                b = batches.get(p.split("/")[3])
                if not b:
                    return self.send(404, err_body("No batch found"))
                advance(b)
                return self.send(200, batch_view(b))
            if p.startswith("/v1/files/") and p.endswith("/content"):
                f = files.get(p.split("/")[3])
                if not f:
                    return self.send(404, err_body("No such File object"))
                data = f["bytes"]
        if p.startswith("/v1/files/") and p.endswith("/content"):
            if fault(["cut"]) == "cut" and len(data) > 100:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2]); self.wfile.flush()
                return self.drop()
            return self.send(200, None, raw=data)
        self.send(404, err_body("Unknown route " + p))

    def do_DELETE(self):
        if not self.auth():
            return
        p = self.path
        with lock:
            fid = p.split("/")[3] if p.startswith("/v1/files/") else None
            if fid and fid in files:
                del files[fid]
                return self.send(200, {"id": fid, "object": "file", "deleted": True})
        self.send(404, err_body("No such File object"))

    def do_POST(self):
        if not self.auth():
            return
        data = self.body()
        if self.generic_fault():
            return
        p = self.path.partition("?")[0]
        if p == "/v1/files" and os.environ.get("MOCK_UPLOAD_FAIL"):
            return self.send(int(os.environ["MOCK_UPLOAD_FAIL"]), err_body("upload refused"))
        if p == "/v1/files":
            if os.environ.get("MOCK_LOG"):
                sys.stderr.write("%.3f UPLOAD headers CL=%s TE=%s CT=%s read=%d head=%r tail=%r\n" % (time.time(), self.headers.get("Content-Length"),
                    self.headers.get("Transfer-Encoding"), self.headers.get("Content-Type"), len(data), data[:300], data[-120:])); sys.stderr.flush()
            ctype = self.headers.get("Content-Type", "")
            boundary = ctype.split("boundary=")[1].strip('"').encode()
            parts = data.split(b"--" + boundary)
            content, purpose, filename = None, None, None
            for part in parts:
                head, _, rest = part.partition(b"\r\n\r\n")
                if b'name="file"' in head:
                    content = rest[:-2] if rest.endswith(b"\r\n") else rest
                    filename = head.split(b'filename="')[1].split(b'"')[0].decode()
                elif b'name="purpose"' in head:
                    purpose = rest.strip().decode()
            if content is None or purpose != "batch":
                return self.send(400, err_body("missing file or purpose"))
            if not filename.endswith(".jsonl"):
                return self.send(400, err_body("Invalid file format for Batch API. Must be .jsonl"))
            fid = "file-" + uuid.uuid4().hex[:20]
            with lock:
                files[fid] = {"bytes": content, "purpose": purpose, "filename": filename, "created": NOW()}
            if fault(["lost"]) == "lost":
                return self.drop()
            return self.send(200, {"id": fid, "object": "file", "bytes": len(content), "created_at": NOW(),
                                   "expires_at": NOW() + 2592000, "filename": filename, "purpose": "batch",
                                   "status": "processed", "status_details": None})
        if p == "/v1/batches":
            req = json.loads(data)
            with lock:
                f = files.get(req.get("input_file_id"))
                if not f:
                    return self.send(404, err_body("No such File object: " + str(req.get("input_file_id"))))
                if req.get("completion_window") != "24h" or req.get("endpoint") != "/v1/chat/completions":
                    return self.send(400, err_body("bad endpoint or window"))
                lines = [json.loads(l) for l in f["bytes"].split(b"\n") if l.strip()]
                ids = [l["custom_id"] for l in lines]
                if len(set(ids)) != len(ids):
                    return self.send(400, err_body("duplicate_custom_id"))
                bid = "batch_" + uuid.uuid4().hex
                b = {"id": bid, "object": "batch", "endpoint": req["endpoint"], "errors": None,
                     "input_file_id": req["input_file_id"], "completion_window": "24h", "status": "validating",
                     "output_file_id": None, "error_file_id": None, "created_at": NOW(), "in_progress_at": None,
                     "expires_at": NOW() + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
                     "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                     "request_counts": {"total": 0, "completed": 0, "failed": 0},
                     "metadata": req.get("metadata"), "model": "gpt-4o-mini-2024-07-18",
                     "t0": time.time(), "ids_count": len(ids)}
                if args.fate_rate and rng.random() < args.fate_rate:
                    b["fate"] = rng.choice(["expire", "fail"]); b["fate_part"] = rng.uniform(0.1, 0.9)
                batches[bid] = b; order.append(bid)
                events.append(("create", bid, len(ids)))
                save_ledger()
                lose = args.lose_first_create and not answered_a_create[0]
                answered_a_create[0] = True
            if lose or fault(["lost"]) == "lost":
                with lock:
                    events.append(("create_lost", bid, time.time()))
                return self.drop()
            return self.send(200, batch_view(b))
        if p == "/v1/chat/completions":
            req = json.loads(data)
            text = req["messages"][-1]["content"]
            cid = "row-" + text.split(" ", 1)[1]
            with lock:
                billed[cid] = billed.get(cid, 0) + 1
                events.append(("realtime", cid, time.time()))
            return self.send(200, {"id": "chatcmpl-" + uuid.uuid4().hex[:8], "object": "chat.completion", "created": NOW(),
                "model": req.get("model", "gpt-4o-mini") + "-2024-07-18",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "echo:" + cid, "refusal": None},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}},
                {"x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "9999",
                 "x-ratelimit-reset-requests": "6ms"})
        if p == "/v1/ledger":
            with lock:
                save_ledger()
            return self.send(200, {"ok": True})
        if p.startswith("/v1/batches/") and p.endswith("/cancel"):
            with lock:
                b = batches.get(p.split("/")[3])
                if not b:
                    return self.send(404, err_body("No batch found"))
                advance(b)
                if b["status"] in ("validating", "in_progress", "finalizing"):
                    b["status"] = "cancelling"; b["cancelling_at"] = NOW(); b["cancel_t"] = time.time()
                    events.append(("cancel", b["id"])); save_ledger()
                    return self.send(200, batch_view(b))
                return self.send(400, err_body("Cannot cancel a batch with status " + b["status"]))
        self.send(404, err_body("Unknown route " + p))


def busy():
    """Another client of the same account: a batch every --busy-every seconds, ended at once."""
    i = 0
    while True:
        time.sleep(args.busy_every)
        with lock:
            bid = "batch_other%027d" % i
            batches[bid] = {"id": bid, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
                            "input_file_id": "file-other", "completion_window": "24h", "status": "completed",
                            "output_file_id": None, "error_file_id": None, "created_at": NOW(), "in_progress_at": NOW(),
                            "expires_at": NOW() + 86400, "finalizing_at": NOW(), "completed_at": NOW(), "failed_at": None,
                            "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                            "request_counts": {"total": 1, "completed": 1, "failed": 0}, "metadata": {"owner": "someone-else"},
                            "model": "gpt-4o-mini-2024-07-18", "t0": time.time(), "ids_count": 1, "foreign": True}
            order.append(bid)
        i += 1


if args.busy_every > 0:
    threading.Thread(target=busy, daemon=True).start()


class S(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


print("listening", args.port, flush=True)
S(("127.0.0.1", args.port), H).serve_forever()

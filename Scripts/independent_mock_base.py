"""Shared plumbing of the independent Anthropic and Gemini mocks (Scripts/independent-*-mock.py):
argument parsing, a seeded fault picker, the ledger file and an HTTP handler base that can answer,
drop a connection, cut a body or answer slowly. Written for Scripts/independent-check.py; not
used by CI. Nothing here is taken from BatchKit's own emulator (Sources/BatchKitTesting)."""
import argparse, json, os, random, socket, struct, sys, threading, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler


def parse_args(default_port, extra=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=default_port)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fault-rate", type=float, default=0.1, help="chance that one call meets a fault")
    ap.add_argument("--line-fail-rate", type=float, default=0.01, help="chance that one batch item errors")
    ap.add_argument("--fate-rate", type=float, default=0.15, help="chance that a batch expires or fails part-way")
    ap.add_argument("--ledger", default="/tmp/indep/ledger.json")
    if extra:
        extra(ap)
    return ap.parse_args()


class Ledger:
    """What the mock billed and did, for the checker. `billed`: custom id -> number of billed
    answers (batch successes when a batch ends, real-time 200s when sent). `events`: tuples
    ("create", job, n, t), ("finish", job, state, billed, t), ("cancel", job, t),
    ("realtime", id, t, arrived) (billed at t, the request
    arrived at `arrived`, before any slow fault), ("realtime_lost", id, t) for a billed real-time answer that was dropped,
    ("create_lost", job, t) and ("upload_lost", file, t) for answers dropped after the effect."""

    def __init__(self, path):
        self.path, self.billed, self.events = path, {}, []

    def bill(self, cid):
        self.billed[cid] = self.billed.get(cid, 0) + 1

    def save(self, jobs):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path + ".tmp", "w") as f:
            json.dump({"billed": self.billed, "events": self.events, "jobs": jobs}, f)
        os.replace(self.path + ".tmp", self.path)


class Faults:
    """A seeded picker: `pick(kinds)` returns one of `kinds` with probability `rate`, else None.
    Counts what it picked (the checker reports it)."""

    def __init__(self, seed, rate, lock):
        self.rng, self.rate, self.lock, self.count = random.Random(seed), rate, lock, {}
        # Whether a create has been answered yet (`--lose-first-create` loses the first answer).
        self.answered_a_create = False

    def pick(self, kinds, rate=None):
        with self.lock:
            if self.rng.random() < (self.rate if rate is None else rate):
                k = self.rng.choice(kinds)
                if k is not None:
                    self.count[k] = self.count.get(k, 0) + 1
                return k
        return None

    def uniform(self, a, b):
        with self.lock:
            return self.rng.uniform(a, b)

    def chance(self, p):
        with self.lock:
            return self.rng.random() < p


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        if os.environ.get("MOCK_LOG"):
            sys.stderr.write("%.3f %s\n" % (time.time(), fmt % a)); sys.stderr.flush()

    def note(self, text):
        if os.environ.get("MOCK_LOG"):
            sys.stderr.write("%.3f %s %s %s\n" % (time.time(), text, self.command, self.path)); sys.stderr.flush()

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size)); self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, code, obj, extra=None, raw=None, ctype="application/json"):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def cut(self, data, ctype="application/json"):
        """Promises the whole body, sends half of it, then resets the connection."""
        self.note("CUT")
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2]); self.wfile.flush()
        self.drop()

    def answer_create(self, job_id, answer, faults, ledger, lock, lose_first):
        """Answers a create that made `job_id`: the answer is lost (a reset after the job exists;
        always for the first create with `lose_first`), slow (1-4 s), or sent at once."""
        f = faults.pick(["lost", "slow"])
        with lock:
            if lose_first and not faults.answered_a_create:
                f = "lost"
            faults.answered_a_create = True
        if f == "lost":
            with lock:
                ledger.events.append(("create_lost", job_id, time.time()))
            return self.drop()
        if f == "slow":
            time.sleep(faults.uniform(1, 4))
        self.send(200, answer)

    def drop(self):
        """Closes the connection with a TCP reset and no answer."""
        self.note("DROP")
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def serve(port, handler):
    print("listening", port, flush=True)
    Server(("127.0.0.1", port), handler).serve_forever()


def rfc3339(t, digits=6):
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    frac = ("%.9f" % (t - int(t)))[2:2 + digits]
    return base + ("." + frac if digits else "") + "Z"

#!/usr/bin/env python3
"""Runs `batchkit run` (MODE=native, hybrid or realtime) against an independent mock
(PROVIDER=openai: Scripts/independent-openai-mock.py, anthropic: independent-anthropic-mock.py,
gemini: independent-gemini-mock.py) with seeded faults and kill -9 at random moments, reruns until
it finishes, then checks invariants against the mock's ledger: one line per id, the right answer
for each, no id billed twice (beyond real-time requests in flight at a kill, or whose billed answer
the mock dropped: the documented windows), nothing billed and not delivered, every job ended. A
run with no progress for 60 s is a stall: its threads are dumped with gdb.

  BATCHKIT=.build/release/batchkit MODE=hybrid DEADLINE=1s N=20000 python3 Scripts/independent-check.py 1 9
  BATCHKIT=.build/release/batchkit PROVIDER=anthropic MODE=native N=20000 python3 Scripts/independent-check.py 1 9
  BATCHKIT=.build/release/batchkit PROVIDER=gemini MODE=native N=20000 PAD=1100 python3 Scripts/independent-check.py 1 9

PAD=n adds n bytes to each prompt (Gemini: over 20 MB of requests go through an uploaded file
instead of inline). PORT (default: openai 18050, anthropic 18110, gemini 18120), FAULT_RATE
(0.1), FATE_RATE (share of batches that expire or fail: anthropic/gemini 0.15, openai 0), MAX_KILLS (11),
MOCK_ARGS (more mock options, e.g. gemini's
"--list-order oldest --preexisting 150 --lose-first-create --list-lag 1"), RETRIES (0: after an exit 3, rerun with --retry-failed up to this many times, kills included).
Prints one JSON line per seed; a violating seed's files are kept in /tmp/indep/fail-PROVIDER-seedN.
Not used by CI."""
import json, os, random, signal, subprocess, sys, time, urllib.request, shutil

BIN = os.environ.get("BATCHKIT", ".build/release/batchkit")
PROVIDER = os.environ.get("PROVIDER", "openai")
MODE = os.environ.get("MODE", "native")
N = int(os.environ.get("N", "110000"))
PAD = int(os.environ.get("PAD", "0"))
seeds = range(int(sys.argv[1]), int(sys.argv[2]))
fault_rate = float(os.environ.get("FAULT_RATE", "0.1"))
port = int(os.environ.get("PORT", {"openai": "18050", "anthropic": "18110", "gemini": "18120"}[PROVIDER]))
max_kills = int(os.environ.get("MAX_KILLS", "11"))
retries = int(os.environ.get("RETRIES", "0"))
root = os.environ.get("ROOT", f"/tmp/indep/run-{PROVIDER}-{port}")
here = os.path.dirname(os.path.abspath(__file__))
os.makedirs("/tmp/indep", exist_ok=True)

# Per provider: the mock, the key's variable and value, the base URL, the model.
SETUP = {
    "openai": ("independent-openai-mock.py", "OPENAI_API_KEY", "sk-indep", f"http://127.0.0.1:{port}/v1", None),
    "anthropic": ("independent-anthropic-mock.py", "ANTHROPIC_API_KEY", "sk-ant-indep", f"http://127.0.0.1:{port}", "claude-haiku-4-5"),
    "gemini": ("independent-gemini-mock.py", "GEMINI_API_KEY", "gm-indep", f"http://127.0.0.1:{port}", "gemini-2.5-flash"),
}
mock_script, key_var, key, base_url, model = SETUP[PROVIDER]


def call(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    for _ in range(50):
        try:
            return json.load(urllib.request.urlopen(req, timeout=30))
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("mock does not answer " + url)


def answer_text(body):
    """The answer's text, from the provider's own body (the output keeps it as the provider sent it)."""
    if PROVIDER == "anthropic":
        return "".join(b.get("text", "") for b in body["content"] if b.get("type") == "text")
    if PROVIDER == "gemini":
        return "".join(p.get("text", "") for p in body["candidates"][0]["content"]["parts"])
    return body["choices"][0]["message"]["content"]


def settle():
    """Lets jobs still running (orphans) end, then has the mock write its ledger. Returns the ids
    of jobs not ended and the mock's fault counts."""
    if PROVIDER == "openai":
        auth = {"Authorization": "Bearer sk-indep"}
        for _ in range(6):
            time.sleep(0.6)
            call(f"http://127.0.0.1:{port}/v1/batches?limit=1", headers=auth)
        # Every page (the mock's --busy-every puts other clients' batches in front of the run's).
        open_, after = [], ""
        while True:
            page = call(f"http://127.0.0.1:{port}/v1/batches?limit=100{after}", headers=auth)
            open_ += [b["id"] for b in page["data"] if b["status"] not in ("completed", "cancelled", "failed", "expired")]
            if not page["has_more"]:
                break
            after = "&after=" + page["last_id"]
        call(f"http://127.0.0.1:{port}/v1/ledger", b"{}", dict(auth, **{"Content-Type": "application/json"}))
        return open_, {}
    for _ in range(6):
        time.sleep(0.6)
        answer = call(f"http://127.0.0.1:{port}/_mock/ledger", b"{}")
    return answer["nonterminal"], answer["faults"]


def failures_in_output():
    with open(f"{root}/out.jsonl") as f:
        return any('"status_code":200' not in line for line in f)


for seed in seeds:
    shutil.rmtree(root, ignore_errors=True); os.makedirs(root)
    inp = f"{root}/in.jsonl"
    pad = " " + "x" * (PAD - 1) if PAD > 0 else ""
    with open(inp, "w") as f:
        for i in range(N):
            f.write(json.dumps({"custom_id": f"row-{i}", "method": "POST", "url": "/v1/chat/completions",
                                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q {i}{pad}"}],
                                         "max_tokens": 5}}) + "\n")
    ledger = f"{root}/ledger.json"
    mock_cmd = [sys.executable, os.path.join(here, mock_script), "--port", str(port), "--seed", str(seed),
                "--fault-rate", str(fault_rate), "--ledger", ledger]
    if "FATE_RATE" in os.environ:
        mock_cmd += ["--fate-rate", os.environ["FATE_RATE"]]
    mock_cmd += os.environ.get("MOCK_ARGS", "").split()
    mock = subprocess.Popen(mock_cmd, stdout=subprocess.PIPE, stderr=open(f"{root}/mock.err", "w"))
    mock.stdout.readline()
    rng = random.Random(seed * 7919)
    runs, kills, rc = 0, 0, None
    kill_times = []
    env = dict(os.environ, **{key_var: key})
    cmd = [BIN, "run", inp, "--output", f"{root}/out.jsonl", "--mode", MODE, "--provider", PROVIDER,
           "--base-url", base_url, "--poll-interval", "250ms"]
    if model:
        cmd += ["--model", model]
    if MODE == "hybrid":
        cmd += ["--deadline", os.environ.get("DEADLINE", "2s")]
    started = time.time()
    retries_left = retries
    while runs < 25:
        runs += 1
        log = open(f"{root}/run{runs}.log", "w")
        p = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        kill_at = rng.uniform(0.05, 6.0) if runs <= max_kills and rng.random() < 0.8 else None
        try:
            if kill_at:
                rc = p.wait(timeout=kill_at)
            else:
                last, last_t = -1, time.time()
                while True:
                    try:
                        rc = p.wait(timeout=5); break
                    except subprocess.TimeoutExpired:
                        size = os.path.getsize(f"{root}/out.jsonl") if os.path.exists(f"{root}/out.jsonl") else 0
                        if size != last:
                            last, last_t = size, time.time()
                        elif time.time() - last_t > 60:
                            subprocess.run(["gdb", "-p", str(p.pid), "-batch", "-ex", "thread apply all bt"],
                                           stdout=open(f"{root}/stacks.txt", "w"), stderr=subprocess.STDOUT)
                            raise subprocess.TimeoutExpired(cmd, 60)
        except subprocess.TimeoutExpired:
            if kill_at is None:
                p.kill(); p.wait(); rc = "stalled"; break
            p.send_signal(signal.SIGKILL); p.wait(); kills += 1; rc = None; kill_times.append(time.time())
            continue
        if rc in (0, 3) and retries_left > 0 and failures_in_output():
            # Some requests failed (errored items, an expired batch): rerun them, as a user would.
            # (After a kill, the rerun that finishes exits 0 when its own requests succeeded,
            # even though failures of the killed run are in the output: look at the output.)
            retries_left -= 1
            if "--retry-failed" not in cmd:
                cmd.append("--retry-failed")
            continue
        if rc in (0, 3):
            break
    elapsed = time.time() - started
    nonterminal, fault_counts = settle()
    L = json.load(open(ledger))
    mock.terminate(); mock.wait()
    out = {}
    dup_lines = 0
    wrong = 0
    if os.path.exists(f"{root}/out.jsonl"):
        for line in open(f"{root}/out.jsonl"):
            o = json.loads(line)
            cid = o["custom_id"]
            if cid in out:
                dup_lines += 1
            out[cid] = o
            r = o.get("response")
            if r and r.get("status_code") == 200:
                if answer_text(r["body"]) != "echo:" + cid:
                    wrong += 1
    ids = {f"row-{i}" for i in range(N)}
    missing = len(ids - set(out))
    extra = len(set(out) - ids)
    billed = L["billed"]
    rt_times, rt_lost = {}, set()
    for e in L["events"]:
        if e[0] == "realtime":
            # (billed at, arrived at): the OpenAI mock records only the first.
            rt_times.setdefault(e[1], []).append((e[2], e[3] if len(e) > 3 else e[2]))
        elif e[0] == "realtime_lost":
            rt_lost.add(e[1])
    def at_kill(c):
        # In flight at a kill: it arrived before the kill, and was billed at most 3 s before it
        # (or after it: a slow answer finishes after the client is gone).
        return any(arrived <= k and k - t <= 3 for t, arrived in rt_times.get(c, []) for k in kill_times)
    twice_ids = [c for c, v in billed.items() if v > 1]
    inflight_at_kill = sum(1 for c in twice_ids if at_kill(c))
    lost_answer = sum(1 for c in twice_ids if not at_kill(c) and c in rt_lost)
    twice = len(twice_ids) - inflight_at_kill - lost_answer
    succ = {c for c, o in out.items() if o.get("response") and o["response"].get("status_code") == 200}
    paid_lost = sum(1 for c in billed if c not in succ)
    unpaid_success = sum(1 for c in succ if c not in billed)
    creates = sum(1 for e in L["events"] if e[0] == "create")
    realtime = sum(1 for e in L["events"] if e[0] == "realtime")
    row = dict(provider=PROVIDER, mode=MODE, seed=seed, rc=rc, runs=runs, kills=kills, secs=round(elapsed, 1), creates=creates,
               realtime=realtime, missing=missing, extra=extra, dup_lines=dup_lines, wrong=wrong, billed_twice=twice,
               realtime_inflight_at_kill_twice=inflight_at_kill, realtime_lost_answer_twice=lost_answer,
               paid_not_delivered=paid_lost, success_not_billed=unpaid_success, nonterminal=len(nonterminal),
               failed_lines=len(out) - len(succ))
    if PROVIDER != "openai":
        row["faults"] = sum(fault_counts.values())
        row["fault_kinds"] = fault_counts
    row["lost_creates"] = sum(1 for e in L["events"] if e[0] == "create_lost")
    row["fates"] = sorted(e[2] for e in L["events"] if e[0] == "finish" and e[2] not in ("ended", "BATCH_STATE_SUCCEEDED", "completed"))
    row["foreign_cancels"] = sum(1 for e in L["events"] if e[0] == "foreign_cancel")
    bad = row["foreign_cancels"] or rc not in (0, 3) or missing or extra or dup_lines or wrong or twice or paid_lost or unpaid_success or nonterminal
    row["VIOLATION"] = bool(bad)
    print(json.dumps(row), flush=True)
    if bad:
        shutil.copytree(root, f"/tmp/indep/fail-{PROVIDER}-seed{seed}", dirs_exist_ok=True)

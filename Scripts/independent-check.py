#!/usr/bin/env python3
"""Runs `batchkit run` (MODE=native or hybrid) against Scripts/independent-openai-mock.py with seeded
faults and kill -9 at random moments, reruns until it finishes, then checks invariants against the
mock's ledger: one line per id, the right answer for each, no id billed twice (beyond real-time
requests in flight at a kill, the documented window), nothing billed and not delivered, every job
ended. A run with no progress for 60 s is a stall: its threads are dumped with gdb.

  BATCHKIT=.build/release/batchkit MODE=hybrid DEADLINE=1s N=20000 python3 Scripts/independent-check.py 1 9

Prints one JSON line per seed; a violating seed's files are kept in /tmp/indep/fail-seedN. Not used by CI."""
import json, os, random, signal, subprocess, sys, time, urllib.request, shutil

BIN = os.environ.get("BATCHKIT", ".build/release/batchkit")
N = int(os.environ.get("N", "110000"))
seeds = range(int(sys.argv[1]), int(sys.argv[2]))
fault_rate = float(os.environ.get("FAULT_RATE", "0.1"))
port = int(os.environ.get("PORT", "18050"))
root = "/tmp/indep/run"
os.makedirs("/tmp/indep", exist_ok=True)

def list_all(url):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer sk-indep"})
    for _ in range(50):
        try:
            return json.load(urllib.request.urlopen(req, timeout=30))
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("cannot list")

summary = []
for seed in seeds:
    shutil.rmtree(root, ignore_errors=True); os.makedirs(root)
    inp = f"{root}/in.jsonl"
    with open(inp, "w") as f:
        for i in range(N):
            f.write(json.dumps({"custom_id": f"row-{i}", "method": "POST", "url": "/v1/chat/completions",
                                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q {i}"}],
                                         "max_tokens": 5}}) + "\n")
    ledger = f"{root}/ledger.json"
    mock = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "independent-openai-mock.py"), "--port", str(port), "--seed", str(seed),
                             "--fault-rate", str(fault_rate), "--ledger", ledger],
                            stdout=subprocess.PIPE, stderr=open(f"{root}/mock.err", "w"))
    mock.stdout.readline()
    rng = random.Random(seed * 7919)
    runs, kills, rc = 0, 0, None
    kill_times = []
    env = dict(os.environ, OPENAI_API_KEY="sk-indep")
    cmd = [BIN, "run", inp, "--output", f"{root}/out.jsonl", "--mode", os.environ.get("MODE", "native"), "--provider", "openai",
           "--base-url", f"http://127.0.0.1:{port}/v1", "--poll-interval", "250ms"] + (["--deadline", os.environ.get("DEADLINE", "2s")] if os.environ.get("MODE") == "hybrid" else [])
    while runs < 25:
        runs += 1
        log = open(f"{root}/run{runs}.log", "w")
        p = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        kill_at = rng.uniform(0.05, 6.0) if runs < 12 and rng.random() < 0.8 else None
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
        if rc in (0, 3):
            break
    # let orphans run to the end: advance every batch a few times
    for _ in range(6):
        time.sleep(0.6)
        page = list_all(f"http://127.0.0.1:{port}/v1/batches?limit=100")
    nonterminal = [b["id"] for b in page["data"] if b["status"] not in ("completed", "cancelled", "failed", "expired")]
    for _ in range(50):
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1/ledger", data=b"{}",
                headers={"Authorization": "Bearer sk-indep", "Content-Type": "application/json"}), timeout=30).read()
            break
        except Exception:
            time.sleep(0.1)
    L = json.load(open(ledger))
    mock.terminate(); mock.wait()
    out = {}
    dup_lines = 0
    wrong = 0
    for line in open(f"{root}/out.jsonl"):
        o = json.loads(line)
        cid = o["custom_id"]
        if cid in out:
            dup_lines += 1
        out[cid] = o
        r = o.get("response")
        if r and r.get("status_code") == 200:
            if r["body"]["choices"][0]["message"]["content"] != "echo:" + cid:
                wrong += 1
    ids = {f"row-{i}" for i in range(N)}
    missing = len(ids - set(out))
    extra = len(set(out) - ids)
    billed = L["billed"]
    rt_times = {}
    for e in L["events"]:
        if e[0] == "realtime":
            rt_times.setdefault(e[1], []).append(e[2])
    def at_kill(c):
        return any(0 <= k - t <= 3 for t in rt_times.get(c, []) for k in kill_times)
    twice_ids = [c for c, v in billed.items() if v > 1]
    inflight_at_kill = sum(1 for c in twice_ids if at_kill(c))
    twice = len(twice_ids) - inflight_at_kill
    succ = {c for c, o in out.items() if o.get("response") and o["response"].get("status_code") == 200}
    paid_lost = sum(1 for c in billed if c not in succ)
    unpaid_success = sum(1 for c in succ if c not in billed)
    creates = sum(1 for e in L["events"] if e[0] == "create")
    realtime = sum(1 for e in L["events"] if e[0] == "realtime")
    row = dict(seed=seed, rc=rc, runs=runs, kills=kills, creates=creates, realtime=realtime, missing=missing, extra=extra,
               dup_lines=dup_lines, wrong=wrong, billed_twice=twice, realtime_inflight_at_kill_twice=inflight_at_kill, paid_not_delivered=paid_lost,
               success_not_billed=unpaid_success, nonterminal=len(nonterminal),
               failed_lines=len(out) - len(succ))
    bad = rc not in (0, 3) or missing or extra or dup_lines or wrong or twice or paid_lost or unpaid_success or nonterminal
    row["VIOLATION"] = bool(bad)
    print(json.dumps(row), flush=True)
    if bad:
        shutil.copytree(root, f"/tmp/indep/fail-seed{seed}", dirs_exist_ok=True)

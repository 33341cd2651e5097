#!/usr/bin/env python3
"""Runs `batchkit run` through Scripts/fault-proxy.py (TCP-level faults: resets at random byte
offsets, stalls, black holes, trickle, latency, close after headers, truncated bodies, half-open and
idle-closed pooled connections, slow close) in front of `batchkit emulator`, for every provider x
mode x transport, with seeded SIGKILLs and reruns until exit 0, then checks per case:

  terminates   every run ends within RUN_BOUND seconds (a hang is dumped with gdb and killed),
               and an exit 0 comes within kills + 8 runs;
  exactly once one output line per input id, each a success after the final exit 0;
  right answer every success line's text is the emulator's deterministic answer to its prompt;
  paid once    no id ran in two batch jobs (the emulator's ledger); ids answered 200 more than
               once in real time are counted (the documented windows: lost answers, requests in
               flight at a kill) and are a violation only in a case with neither kills nor faults;
  jobs ended   every remote job is completed, cancelled, failed or expired at the end.

Transports: `plain` is the CLI's default (PlainHTTPTransport, which also carries native uploads and
downloads since 461e46f); `urlsession` sets HTTP_PROXY to the fault proxy, which sends every request
through URLSession (libcurl, absolute-form request lines; the emulator accepts them); `tls` serves
the emulator over https with Tests/Fixtures/tls and runs PlainHTTPTransport's own TLS through the
proxy with --ca-bundle, every mode (the faults that read HTTP framing — truncate, close_headers,
halfopen, idle_close, reuse_lost — see only ciphertext there and pass it through).

  BATCHKIT=.build/debug/batchkit python3 Scripts/proxy-check.py --seeds 1-3
  python3 Scripts/proxy-check.py --providers openai --modes realtime --transports plain --seeds 5 --rate 0.5

Prints one JSON line per case and a summary line; a violating case keeps its directory under
--work. Ports: --port-base (default 18200) .. +99. Not used by CI.
"""
import argparse, json, os, random, shutil, signal, subprocess, sys, time, urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--batchkit", default=os.environ.get("BATCHKIT", ".build/debug/batchkit"))
ap.add_argument("--providers", default="openai,anthropic,gemini")
ap.add_argument("--modes", default="realtime,native,hybrid")
ap.add_argument("--transports", default="plain,urlsession")
ap.add_argument("--seeds", default="1-2", help="N, A-B (inclusive) or a comma list")
ap.add_argument("--requests", type=int, default=24)
ap.add_argument("--rate", type=float, default=0.3, help="share of connections the proxy breaks")
ap.add_argument("--kinds", default="all")
ap.add_argument("--stall-min", type=float, default=1.0)
ap.add_argument("--stall-max", type=float, default=8.0)
ap.add_argument("--max-kills", type=int, default=2)
ap.add_argument("--kill-window", default="0.1-3.0", help="seconds into a run")
ap.add_argument("--run-bound", type=float, default=float(os.environ.get("RUN_BOUND", "120")),
                help="seconds a single run may take before it counts as a hang")
ap.add_argument("--timeout", default=None, help="passed to batchkit run as --timeout (if it has it)")
ap.add_argument("--concurrency", type=int, default=8)
ap.add_argument("--batch-seconds", type=int, default=1, help="native batches (hybrid: this + 2, so the deadline hits)")
ap.add_argument("--deadline", default="2s", help="hybrid --deadline")
ap.add_argument("--port-base", type=int, default=18200)
ap.add_argument("--work", default="/tmp/proxy-check")
ap.add_argument("--keep", action="store_true", help="keep every case's directory")
args = ap.parse_args()

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.abspath(args.batchkit)
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
KEYS = {"OPENAI_API_KEY": "sk-proxy-0001", "ANTHROPIC_API_KEY": "ak-proxy-0001", "GEMINI_API_KEY": "gk-proxy-0001"}


def parse_seeds(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


# --- the emulator's deterministic answer (ProviderEmulator.syntheticAnswer) -------------------
MASK = (1 << 64) - 1
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
         "kilo", "lima", "mike", "november", "oscar", "papa"]


def splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def base36(n):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    while True:
        n, r = divmod(n, 36)
        s = digits[r] + s
        if n == 0:
            return s


def synthetic_answer(prompt, max_tokens):
    h = 0xcbf29ce484222325
    for b in prompt.encode():
        h = ((h ^ b) * 0x100000001b3) & MASK
    wanted = 4 + h % 12
    count = min(wanted, max(0, max(1, max_tokens) - 4))
    state, parts = h, []
    for _ in range(count):
        state, r = splitmix(state)
        parts.append(WORDS[r % 16])
    return f"Echo({base36(h % 1_000_000)}):" + (" " + " ".join(parts) if parts else "")


def prompt_of(i):
    return f"Proxy ticket {i}"


def input_lines(n):
    return "".join(json.dumps({"custom_id": f"p{i}", "method": "POST", "url": "/v1/chat/completions",
                               "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt_of(i)}],
                                        "max_tokens": 12}}) + "\n" for i in range(n))


def expected_answer(provider, i):
    # Anthropic's prompt text is each content block followed by a newline.
    return synthetic_answer(prompt_of(i) + ("\n" if provider == "anthropic" else ""), 12)


def answer_text(line):
    """The text of a success line (OpenAI-shaped output for every provider)."""
    body = line["response"]["body"]
    if "choices" in body:
        return body["choices"][0]["message"]["content"]
    if "content" in body:  # Anthropic Message
        return "".join(c.get("text", "") for c in body["content"] if c.get("type") == "text")
    if "candidates" in body:  # Gemini
        return "".join(p.get("text", "") for p in body["candidates"][0]["content"]["parts"])
    return None


# --- processes ---------------------------------------------------------------------------------
def wait_port(port, proc, what, timeout=30):
    import socket
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


def http_json(url, headers=None, timeout=10):
    req = urllib.request.Request(url, headers=headers or {})
    for attempt in range(20):
        try:
            context = None
            if url.startswith("https:"):
                import ssl
                context = ssl.create_default_context(
                    cafile=os.path.join(os.path.dirname(HERE), "Tests", "Fixtures", "tls", "ca.pem"))
            return json.load(urllib.request.urlopen(req, timeout=timeout, context=context))
        except Exception:
            if attempt == 19:
                raise
            time.sleep(0.2)


def list_jobs(provider, emu, scheme="http"):
    """(id, status) of every remote job, straight from the emulator (not through the proxy)."""
    base = f"{scheme}://127.0.0.1:{emu}"
    jobs = []
    if provider == "openai":
        page = http_json(f"{base}/v1/batches?limit=100", {"Authorization": "Bearer " + KEYS["OPENAI_API_KEY"]})
        jobs = [(b["id"], b["status"]) for b in page.get("data", [])]
        ended = {"completed", "cancelled", "failed", "expired"}
    elif provider == "anthropic":
        page = http_json(f"{base}/v1/messages/batches?limit=100",
                         {"x-api-key": KEYS["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"})
        jobs = [(b["id"], b["processing_status"]) for b in page.get("data", [])]
        ended = {"ended"}
    else:
        page = http_json(f"{base}/v1beta/batches?pageSize=100", {"x-goog-api-key": KEYS["GEMINI_API_KEY"]})
        ops = page.get("operations", page.get("batches", []))
        for o in ops:
            state = (o.get("metadata") or {}).get("state") or o.get("state") or ("DONE" if o.get("done") else "?")
            jobs.append((o.get("name"), state))
        ended = {"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED",
                 "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED", "DONE"}
    return jobs, [j for j, s in jobs if s not in ended]


def dump_stacks(pid, path):
    try:
        subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt"], stdout=open(path, "w"),
                       stderr=subprocess.STDOUT, timeout=120)
    except Exception as e:
        open(path, "a").write(f"gdb failed: {e}\n")


def has_failed_line(out):
    if not os.path.exists(out):
        return False
    for line in open(out, errors="replace"):
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if (o.get("response") or {}).get("status_code") != 200:
            return True
    return False


def run_case(index, provider, mode, transport, seed):
    rng = random.Random(f"{seed}:{provider}:{mode}:{transport}")
    d = os.path.join(args.work, f"{provider}-{mode}-{transport}-{seed}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    open(os.path.join(d, "in.jsonl"), "w").write(input_lines(args.requests))
    slot = index % 45
    emu, prox = args.port_base + 10 + 2 * slot, args.port_base + 11 + 2 * slot
    billing_file = os.path.join(d, "billing.json")
    tls_dir = os.path.join(os.path.dirname(HERE), "Tests", "Fixtures", "tls")
    tls_args = ["--tls-cert", os.path.join(tls_dir, "good.pem"), "--tls-key", os.path.join(tls_dir, "good.key")] \
        if transport == "tls" else []
    emulator = subprocess.Popen([BIN, "emulator", "--port", str(emu), "--seed", str(seed), "--batch-seconds",
                                 str(args.batch_seconds + (2 if mode == "hybrid" else 0)), "--billing-file", billing_file]
                                + tls_args,
                                stdout=open(os.path.join(d, "emulator.out"), "w"), stderr=subprocess.STDOUT)
    proxy = subprocess.Popen([sys.executable, os.path.join(HERE, "fault-proxy.py"), "--listen", str(prox), "--upstream",
                              f"127.0.0.1:{emu}", "--seed", str(rng.randrange(1 << 30)), "--rate", str(args.rate),
                              "--kinds", args.kinds, "--stall-min", str(args.stall_min), "--stall-max", str(args.stall_max),
                              "--stats", os.path.join(d, "proxy-stats.json"), "--log", os.path.join(d, "proxy.log")],
                             stdout=open(os.path.join(d, "proxy.out"), "w"), stderr=subprocess.STDOUT)
    violations = []
    runs = []
    t0 = time.time()
    try:
        wait_port(emu, emulator, "emulator")
        wait_port(prox, proxy, "proxy")
        env = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR", "LANG") if k in os.environ}
        env.update(KEYS)
        if transport == "urlsession":
            base = f"http://127.0.0.1:{emu}"
            env["HTTP_PROXY"] = env["http_proxy"] = f"http://127.0.0.1:{prox}"
        elif transport == "tls":
            base = f"https://127.0.0.1:{prox}"
        else:
            base = f"http://127.0.0.1:{prox}"
        lo, hi = (float(x) for x in args.kill_window.split("-"))
        kills = rng.randint(0, args.max_kills)
        kill_times = [round(rng.uniform(lo, hi), 2) for _ in range(kills)]
        last = None
        while len(runs) < kills + 8:
            i = len(runs)
            retry_failed = last == 3 or (last is None and i > 0 and has_failed_line(os.path.join(d, "out.jsonl")))
            cmd = [BIN, "run", "in.jsonl", "--output", "out.jsonl", "--provider", provider, "--mode", mode,
                   "--model", MODELS[provider], "--base-url", base, "--poll-interval", "100ms",
                   "--concurrency", str(args.concurrency), "--progress-interval", "1h"]
            if mode == "hybrid":
                cmd += ["--deadline", args.deadline]
            if args.timeout:
                cmd += ["--timeout", args.timeout]
            if transport == "tls":
                cmd += ["--ca-bundle", os.path.join(tls_dir, "ca.pem")]
            if retry_failed:
                cmd.append("--retry-failed")
            kill_at = kill_times[i] if i < kills else None
            start = time.time()
            p = subprocess.Popen(cmd, cwd=d, env=env, stdout=open(os.path.join(d, f"run{i}.out"), "w"),
                                 stderr=open(os.path.join(d, f"run{i}.err"), "w"))
            ending = None
            try:
                rc = p.wait(timeout=kill_at if kill_at is not None else args.run_bound)
                ending = rc
            except subprocess.TimeoutExpired:
                if kill_at is not None:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                    ending = "killed"
                else:
                    dump_stacks(p.pid, os.path.join(d, f"run{i}.stacks"))
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                    ending = "hang"
                    violations.append(f"terminates: run {i} took over {args.run_bound:.0f}s (stacks in run{i}.stacks)")
            runs.append({"exit": ending, "secs": round(time.time() - start, 1), "retry_failed": retry_failed})
            last = ending if isinstance(ending, int) else None
            if ending == 0:
                break
            if ending == 2:
                violations.append("check broken: usage error: " + open(os.path.join(d, f"run{i}.err")).read()[-300:])
                break
            if isinstance(ending, int) and ending not in (3, 4, 1):
                violations.append(f"crash: run {i} exited {ending}")
        if not runs or runs[-1]["exit"] != 0:
            violations.append(f"terminates: no exit 0 after {len(runs)} runs ({[r['exit'] for r in runs]})")

        # Jobs still running are let finish (a hybrid or killed native run may leave some); the
        # CLI is expected to have ended or collected every one.
        jobs, open_jobs = list_jobs(provider, emu, "https" if transport == "tls" else "http")
        if open_jobs:
            violations.append(f"jobs ended: {len(open_jobs)} job(s) not ended: {open_jobs[:3]}")
        billing = http_json(f"{'https' if transport == 'tls' else 'http'}://127.0.0.1:{emu}/_emulator/billing")
    finally:
        for proc in (proxy, emulator):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (proxy, emulator):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # Exactly once and right answers.
    out = os.path.join(d, "out.jsonl")
    lines = {}
    broken = dup = wrong = failed = 0
    if os.path.exists(out):
        for raw in open(out, errors="replace"):
            try:
                o = json.loads(raw)
                cid = o["custom_id"]
            except (ValueError, KeyError):
                broken += 1
                continue
            if cid in lines:
                dup += 1
            lines[cid] = o
            r = o.get("response") or {}
            if r.get("status_code") == 200 and not o.get("error"):
                i = int(cid[1:])
                text = answer_text(o)
                if text != expected_answer(provider, i):
                    wrong += 1
            else:
                failed += 1
    ids = {f"p{i}" for i in range(args.requests)}
    missing = len(ids - set(lines))
    extra = len(set(lines) - ids)
    finished = bool(runs) and runs[-1]["exit"] == 0
    if broken:
        violations.append(f"exactly once: {broken} broken line(s)")
    if dup:
        violations.append(f"exactly once: {dup} duplicate line(s)")
    if missing:
        violations.append(f"exactly once: {missing} id(s) without a line")
    if extra:
        violations.append(f"exactly once: {extra} unknown id(s)")
    if wrong:
        violations.append(f"right answer: {wrong} success line(s) with a wrong answer")
    if finished and failed:
        violations.append(f"exactly once: {failed} failed line(s) after exit 0")
    paid_twice = billing.get("paid_twice", {})
    if paid_twice:
        violations.append(f"paid once: {len(paid_twice)} id(s) in several jobs: {list(paid_twice.items())[:2]}")
    realtime = billing.get("realtime", {})
    realtime_twice = sum(1 for v in realtime.values() if v > 1)
    stats = json.load(open(os.path.join(d, "proxy-stats.json"))) if os.path.exists(os.path.join(d, "proxy-stats.json")) else {}
    faults = {k: v for k, v in stats.get("by_kind", {}).items() if v}
    kills_done = sum(1 for r in runs if r["exit"] == "killed")
    if realtime_twice and not kills_done and not faults:
        violations.append(f"paid once: {realtime_twice} id(s) answered twice in real time with no kill and no fault")
    row = {"provider": provider, "mode": mode, "transport": transport, "seed": seed, "runs": len(runs),
           "kills": kills_done, "exits": [r["exit"] for r in runs], "secs": round(time.time() - t0, 1),
           "max_run_secs": max((r["secs"] for r in runs), default=0),
           "connections": stats.get("connections", 0), "faults": faults, "jobs": len(billing.get("jobs", [])),
           "realtime_twice": realtime_twice, "job_and_realtime": len(billing.get("job_and_realtime", [])),
           "violations": violations}
    if violations or args.keep:
        row["directory"] = d
    else:
        shutil.rmtree(d, ignore_errors=True)
    return row


def main():
    os.makedirs(args.work, exist_ok=True)
    cases = [(p, m, t, s) for s in parse_seeds(args.seeds) for p in args.providers.split(",")
             for m in args.modes.split(",") for t in args.transports.split(",")]
    total = {"cases": 0, "violating_cases": 0, "violations": 0, "runs": 0, "kills": 0, "connections": 0,
             "faults": {}, "hangs": 0, "secs": 0.0}
    t0 = time.time()
    for index, c in enumerate(cases):
        row = run_case(index, *c)
        print(json.dumps(row), flush=True)
        total["cases"] += 1
        total["violating_cases"] += bool(row["violations"])
        total["violations"] += len(row["violations"])
        total["runs"] += row["runs"]
        total["kills"] += row["kills"]
        total["connections"] += row["connections"]
        total["hangs"] += sum(1 for e in row["exits"] if e == "hang")
        for k, v in row["faults"].items():
            total["faults"][k] = total["faults"].get(k, 0) + v
    total["faults_total"] = sum(total["faults"].values())
    total["secs"] = round(time.time() - t0, 1)
    print(json.dumps({"summary": total}), flush=True)


if __name__ == "__main__":
    main()

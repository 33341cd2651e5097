#!/usr/bin/env python3
"""Memory of `batchkit emulator` holding many queued batch requests (issue 12).

Starts `batchkit emulator` (batches take a day, so everything stays queued), posts N requests
over loopback as Anthropic Message Batches (100,000 per batch) or Gemini file-mode batches
(an uploaded JSONL file of 100,000 lines per batch), and prints the emulator's peak and
current resident memory (VmHWM / VmRSS from /proc) as one JSON line per provider.

usage: emulator-queued-memory.py BATCHKIT [--provider anthropic|gemini|both] [--requests N] [--port P]
"""
import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse

PER_BATCH = 100_000


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def request(port, method, path, body=b"", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        sys.exit(f"{method} {path}: {r.status} {data[:300]!r}")
    return r, data


def anthropic_batch(port, start, count):
    reqs = ",".join(
        json.dumps({"custom_id": f"c{i}", "params": {"model": "claude-haiku-4-5", "max_tokens": 32,
                    "messages": [{"role": "user", "content": f"Summarise document {i} in one line."}]}},
                   separators=(",", ":"))
        for i in range(start, start + count))
    body = ('{"requests":[' + reqs + "]}").encode()
    request(port, "POST", "/v1/messages/batches", body,
            {"x-api-key": "sk-ant-bench", "anthropic-version": "2023-06-01", "content-type": "application/json"})


def gemini_batch(port, start, count):
    lines = "".join(
        json.dumps({"key": f"c{i}", "request": {"contents": [{"role": "user", "parts": [
            {"text": f"Summarise document {i} in one line."}]}], "generationConfig": {"maxOutputTokens": 32}}},
            separators=(",", ":")) + "\n"
        for i in range(start, start + count)).encode()
    key = {"x-goog-api-key": "g-bench"}
    r, _ = request(port, "POST", "/upload/v1beta/files", b'{"file":{"displayName":"bench"}}',
                   dict(key, **{"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                                "X-Goog-Upload-Header-Content-Type": "application/jsonl"}))
    url = urllib.parse.urlsplit(r.getheader("x-goog-upload-url"))
    _, data = request(port, "POST", url.path + "?" + url.query, lines,
                      dict(key, **{"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}))
    name = json.loads(data)["file"]["name"]
    body = json.dumps({"batch": {"displayName": "bench", "inputConfig": {"fileName": name}}}).encode()
    request(port, "POST", "/v1beta/models/gemini-2.5-flash:batchGenerateContent", body,
            dict(key, **{"content-type": "application/json"}))


def measure(batchkit, provider, total, port):
    proc = subprocess.Popen([batchkit, "emulator", "--port", str(port), "--batch-seconds", "86400"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
                break
            except OSError:
                time.sleep(0.1)
        idle = status_kb(proc.pid, "VmRSS")
        started = time.time()
        send = anthropic_batch if provider == "anthropic" else gemini_batch
        for start in range(0, total, PER_BATCH):
            send(port, start, min(PER_BATCH, total - start))
        seconds = time.time() - started
        out = {"provider": provider, "requests": total, "batches": (total + PER_BATCH - 1) // PER_BATCH,
               "idle_rss_mb": round(idle / 1024, 1), "rss_mb": round(status_kb(proc.pid, "VmRSS") / 1024, 1),
               "peak_rss_mb": round(status_kb(proc.pid, "VmHWM") / 1024, 1), "seconds": round(seconds, 1)}
        print(json.dumps(out), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("batchkit")
    p.add_argument("--provider", default="both", choices=["anthropic", "gemini", "both"])
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--port", type=int, default=18791)
    a = p.parse_args()
    for provider in (["anthropic", "gemini"] if a.provider == "both" else [a.provider]):
        measure(os.path.abspath(a.batchkit), provider, a.requests, a.port)


if __name__ == "__main__":
    main()

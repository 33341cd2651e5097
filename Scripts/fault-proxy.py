#!/usr/bin/env python3
"""A seeded TCP fault proxy (in the spirit of toxiproxy), stdlib only: listens on a port, forwards
each connection to an upstream server (e.g. `batchkit emulator`), and breaks a share of the
connections below HTTP. Used by Scripts/proxy-check.py; not used by CI.

  python3 Scripts/fault-proxy.py --listen 18201 --upstream 127.0.0.1:18200 --seed 7 --rate 0.3 \
      --stats /tmp/proxy-stats.json [--kinds reset_up,stall,...] [--log /tmp/proxy.log]

Connection number i (in accept order) draws its fate from random.Random("SEED:i"): with probability
--rate one fault kind (uniformly from --kinds), else a clean pass-through. Kinds:

  reset_up       RST (SO_LINGER 0) to the client after N bytes client->server (N random, 0..3000)
  reset_down     RST to the client after N bytes server->client (N random, 0..6000: often a later
                 answer on a kept-alive connection)
  stall          after N bytes server->client, forward nothing for S seconds (--stall-min..max),
                 then resume, or close (FIN), or reset (a third each)
  blackhole      accept and read the request, never connect upstream, never answer
  trickle        server->client a few bytes per millisecond (1..48 bytes/ms)
  latency        every chunk, both ways, held back L ms (--latency-min..max)
  close_headers  close (FIN) right after the first answer's header block
  truncate       forward the first answer's headers and part of its body (cut at a random byte;
                 for chunked bodies mid-chunk), then forward nothing more, connection left open
  halfopen       after the first whole answer the peer vanishes: nothing forwarded either way, no
                 FIN, no RST (a reused connection meets silence)
  idle_close     after the first whole answer, FIN after 0..30 ms; a request sent on it after that
                 meets RST, unforwarded (the keep-alive race: the server closed an idle connection)
  reuse_lost     the second request on the connection is forwarded (it takes effect upstream), then
                 the client gets RST instead of its answer
  slow_close     when either side closes, the other side is closed only S seconds later

Counts per kind (and connections, bytes) are written as JSON to --stats every half second and at
exit (SIGTERM/SIGINT); --log gets one line per injected fault.
"""
import argparse, asyncio, json, os, random, signal, socket, struct, sys, time

KINDS = ["reset_up", "reset_down", "stall", "blackhole", "trickle", "latency", "close_headers", "truncate",
         "halfopen", "idle_close", "reuse_lost", "slow_close"]

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--listen", type=int, required=True)
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--upstream", required=True, help="HOST:PORT")
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--rate", type=float, default=0.3, help="share of connections that meet a fault")
ap.add_argument("--kinds", default="all", help="comma-separated kinds, or all")
ap.add_argument("--stall-min", type=float, default=1.0)
ap.add_argument("--stall-max", type=float, default=8.0)
ap.add_argument("--latency-min", type=float, default=5.0, help="ms")
ap.add_argument("--latency-max", type=float, default=200.0, help="ms")
ap.add_argument("--slow-close", type=float, default=2.0, help="seconds")
ap.add_argument("--stats", default=None)
ap.add_argument("--log", default=None)
ap.add_argument("--log-connections", action="store_true", help="also log every connection's open and close")
args = ap.parse_args()

kinds = KINDS if args.kinds == "all" else [k.strip() for k in args.kinds.split(",") if k.strip()]
for k in kinds:
    if k not in KINDS:
        sys.exit(f"unknown kind {k}; known: {', '.join(KINDS)}")
up_host, up_port = args.upstream.rsplit(":", 1)
up_port = int(up_port)

stats = {"connections": 0, "faulted": 0, "bytes_up": 0, "bytes_down": 0, "by_kind": {k: 0 for k in kinds},
         "open": 0, "seed": args.seed, "rate": args.rate}
dirty = True
log_file = open(args.log, "a", buffering=1) if args.log else None


def note(conn_id, kind, **params):
    global dirty
    stats["faulted"] += 1
    stats["by_kind"][kind] = stats["by_kind"].get(kind, 0) + 1
    dirty = True
    if log_file:
        log_file.write(json.dumps({"t": round(time.time(), 3), "conn": conn_id, "kind": kind, **params}) + "\n")


def write_stats():
    global dirty
    if not args.stats:
        return
    tmp = args.stats + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, args.stats)
    dirty = False


class ResponseTracker:
    """Follows HTTP/1.1 answers in the server->client byte stream: where each header block ends
    (its body starts) and where each answer ends. Enough framing for Content-Length, chunked and
    no-body answers; an answer without either runs to the end of the stream."""

    def __init__(self):
        self.state = "head"
        self.head = bytearray()
        self.left = 0          # body bytes left (length) or chunk bytes left
        self.chunk_line = bytearray()
        self.answers = 0       # answers that ended
        self.body_started_at = None

    def feed(self, data):
        """Yields (offset_after, event) for events 'headers' and 'end' inside data."""
        i, n = 0, len(data)
        events = []
        while i < n:
            if self.state == "head":
                j = data.find(b"\n", i)
                if j < 0:
                    self.head += data[i:]
                    i = n
                    break
                self.head += data[i:j + 1]
                i = j + 1
                if self.head.endswith(b"\r\n\r\n") or self.head.endswith(b"\n\n"):
                    status, length, chunked = self._parse(bytes(self.head))
                    self.head = bytearray()
                    events.append((i, "headers"))
                    if 100 <= status < 200:
                        continue
                    if status in (204, 304) or (length == 0 and not chunked):
                        self.answers += 1
                        events.append((i, "end"))
                    elif chunked:
                        self.state, self.chunk_line = "chunk_size", bytearray()
                    elif length is not None:
                        self.state, self.left = "length", length
                    else:
                        self.state = "until_close"
            elif self.state == "length":
                take = min(self.left, n - i)
                self.left -= take
                i += take
                if self.left == 0:
                    self.state = "head"
                    self.answers += 1
                    events.append((i, "end"))
            elif self.state == "chunk_size":
                j = data.find(b"\n", i)
                if j < 0:
                    self.chunk_line += data[i:]
                    i = n
                    break
                self.chunk_line += data[i:j + 1]
                i = j + 1
                size = int(self.chunk_line.split(b";")[0].strip() or b"0", 16)
                self.chunk_line = bytearray()
                if size == 0:
                    self.state = "trailers"
                else:
                    self.state, self.left = "chunk_data", size + 2  # data + CRLF
            elif self.state == "chunk_data":
                take = min(self.left, n - i)
                self.left -= take
                i += take
                if self.left == 0:
                    self.state = "chunk_size"
            elif self.state == "trailers":
                j = data.find(b"\n", i)
                if j < 0:
                    self.chunk_line += data[i:]
                    i = n
                    break
                line = bytes(self.chunk_line + data[i:j + 1])
                self.chunk_line = bytearray()
                i = j + 1
                if line.strip() == b"":
                    self.state = "head"
                    self.answers += 1
                    events.append((i, "end"))
            else:  # until_close
                i = n
        return events

    @staticmethod
    def _parse(head):
        lines = head.split(b"\r\n") if b"\r\n" in head else head.split(b"\n")
        try:
            status = int(lines[0].split()[1])
        except Exception:
            status = 0
        length, chunked = None, False
        for line in lines[1:]:
            if b":" not in line:
                continue
            name, value = line.split(b":", 1)
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    pass
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        return status, length, chunked


def rst(writer):
    """Closes with RST (SO_LINGER on, 0 s)."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        writer.transport.abort()
    except Exception:
        pass


def fin(writer):
    try:
        writer.close()
    except Exception:
        pass


conn_counter = 0


async def handle(client_r, client_w):
    global conn_counter, dirty
    conn_id = conn_counter
    conn_counter += 1
    stats["connections"] += 1
    stats["open"] += 1
    dirty = True
    rng = random.Random(f"{args.seed}:{conn_id}")
    kind = rng.choice(kinds) if kinds and rng.random() < args.rate else None
    if log_file and args.log_connections:
        log_file.write(json.dumps({"t": round(time.time(), 3), "conn": conn_id, "open": kind}) + "\n")
    try:
        await run_connection(conn_id, kind, rng, client_r, client_w)
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    finally:
        if log_file and args.log_connections:
            log_file.write(json.dumps({"t": round(time.time(), 3), "conn": conn_id, "closed": True}) + "\n")
        stats["open"] -= 1
        dirty = True
        fin(client_w)


async def drain_forever(reader):
    """Reads and discards until the peer closes."""
    while True:
        data = await reader.read(65536)
        if not data:
            return


async def run_connection(conn_id, kind, rng, client_r, client_w):
    if kind == "blackhole":
        note(conn_id, kind)
        await drain_forever(client_r)
        return
    try:
        up_r, up_w = await asyncio.open_connection(up_host, up_port)
    except OSError:
        rst(client_w)
        return

    # Parameters drawn up front, so a connection's fault depends only on the seed and its number.
    p = {}
    if kind == "reset_up":
        p["after"] = rng.randint(0, 3000)
    elif kind == "reset_down":
        p["after"] = rng.randint(0, 6000)
    elif kind == "stall":
        p["after"] = rng.randint(0, 2000)
        p["seconds"] = round(rng.uniform(args.stall_min, args.stall_max), 2)
        p["then"] = rng.choice(["resume", "close", "reset"])
    elif kind == "trickle":
        p["bytes_per_ms"] = rng.randint(1, 48)
    elif kind == "latency":
        p["ms"] = round(rng.uniform(args.latency_min, args.latency_max), 1)
    elif kind == "idle_close":
        p["delay_ms"] = rng.randint(0, 30)
    elif kind == "truncate":
        p["fraction"] = rng.random()
    noted = False

    def inject(**extra):
        nonlocal noted
        if not noted:
            noted = True
            note(conn_id, kind, **p, **extra)

    if kind in ("trickle", "latency", "slow_close"):
        inject()

    # silent: the peer vanished (halfopen); hold: nothing more goes to the client, but its
    # connection is left open until it closes it (truncate, halfopen).
    state = {"answers_done": 0, "silent": False, "hold": False, "closed_client": False, "lose_answer": False}
    tracker = ResponseTracker()

    async def close_later(writer):
        if kind == "slow_close":
            await asyncio.sleep(args.slow_close)
        fin(writer)

    async def pump_up():
        sent = 0
        try:
            while True:
                data = await client_r.read(65536)
                if not data:
                    await close_later(up_w)
                    break
                if state["silent"]:
                    continue
                if kind == "latency":
                    await asyncio.sleep(p["ms"] / 1000)
                if state["answers_done"] >= 1 and kind in ("idle_close", "reuse_lost"):
                    if kind == "idle_close":
                        # Data on a connection the server is closing: unread, the kernel answers RST.
                        inject(on="request_after_close")
                        rst(client_w)
                        break
                    if kind == "reuse_lost":
                        up_w.write(data)
                        await up_w.drain()
                        inject(forwarded=len(data))
                        state["lose_answer"] = True
                        continue
                if kind == "reset_up" and sent + len(data) > p["after"]:
                    cut = p["after"] - sent
                    if cut > 0:
                        up_w.write(data[:cut])
                        await up_w.drain()
                    inject()
                    rst(client_w)
                    rst(up_w)
                    break
                sent += len(data)
                stats["bytes_up"] += len(data)
                up_w.write(data)
                await up_w.drain()
        except (ConnectionError, OSError):
            pass

    async def send_down(data):
        if kind == "trickle":
            step = p["bytes_per_ms"]
            for k in range(0, len(data), step):
                client_w.write(data[k:k + step])
                await client_w.drain()
                await asyncio.sleep(0.001)
        else:
            client_w.write(data)
            await client_w.drain()
        stats["bytes_down"] += len(data)

    async def pump_down():
        received = 0
        try:
            while True:
                data = await up_r.read(65536)
                if not data:
                    if not state["hold"]:
                        await close_later(client_w)
                    break
                if state["lose_answer"]:
                    rst(client_w)
                    break
                if state["hold"]:
                    continue
                if kind == "latency":
                    await asyncio.sleep(p["ms"] / 1000)
                events = tracker.feed(data)
                if kind == "reset_down" and received + len(data) > p["after"]:
                    cut = p["after"] - received
                    if cut > 0:
                        await send_down(data[:cut])
                    inject(answers_before=tracker.answers)
                    rst(client_w)
                    break
                if kind == "stall" and not noted and received + len(data) > p["after"]:
                    cut = max(0, p["after"] - received)
                    if cut > 0:
                        await send_down(data[:cut])
                    inject()
                    await asyncio.sleep(p["seconds"])
                    if p["then"] == "close":
                        fin(client_w)
                        break
                    if p["then"] == "reset":
                        rst(client_w)
                        break
                    await send_down(data[cut:])
                    received += len(data)
                    continue
                if kind == "close_headers":
                    heads = [o for o, e in events if e == "headers"]
                    if heads:
                        await send_down(data[:heads[0]])
                        inject()
                        fin(client_w)
                        break
                if kind == "truncate":
                    heads = [o for o, e in events if e == "headers"]
                    ends = [o for o, e in events if e == "end"]
                    if heads:
                        start = heads[0]
                        stop = ends[0] if ends else len(data)
                        body = stop - start
                        if body > 0:
                            cut = start + int(p["fraction"] * body)
                            await send_down(data[:cut])
                            inject(body_sent=cut - start, body_in_chunk=body)
                            state["hold"] = True
                            continue
                if kind in ("halfopen", "idle_close"):
                    ends = [o for o, e in events if e == "end"]
                    if ends:
                        await send_down(data[:ends[0]])
                        received += ends[0]
                        state["answers_done"] += 1
                        if kind == "halfopen":
                            inject()
                            state["silent"] = state["hold"] = True
                            continue
                        await asyncio.sleep(p["delay_ms"] / 1000)
                        inject()
                        state["closed_client"] = True
                        try:
                            client_w.write_eof()
                        except (OSError, RuntimeError):
                            pass
                        continue
                if kind == "reuse_lost" and any(e == "end" for _, e in events):
                    state["answers_done"] += 1
                received += len(data)
                await send_down(data)
        except (ConnectionError, OSError):
            pass

    up_task, down_task = asyncio.create_task(pump_up()), asyncio.create_task(pump_down())
    finished, _ = await asyncio.wait([up_task, down_task], return_when=asyncio.FIRST_COMPLETED)
    if up_task in finished:
        # The client is gone (or was reset): nothing more to forward.
        down_task.cancel()
    else:
        # The answer side ended. When held (truncate, halfopen), the client's connection stays
        # open until the client closes it; else the client was closed and its reader ends soon.
        try:
            await asyncio.wait_for(up_task, timeout=None if state["hold"] else 5)
        except asyncio.TimeoutError:
            pass
    fin(up_w)


async def stats_writer():
    while True:
        await asyncio.sleep(0.5)
        if dirty:
            write_stats()


async def main():
    server = await asyncio.start_server(handle, args.host, args.listen, reuse_address=True, backlog=1024)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    writer = asyncio.create_task(stats_writer())
    print(f"fault-proxy listening on {args.host}:{args.listen} -> {args.upstream}", flush=True)
    await stop.wait()
    writer.cancel()
    server.close()
    write_stats()


if __name__ == "__main__":
    asyncio.run(main())

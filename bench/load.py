"""The API under load and abuse, while the same BUILD folder is rebuilt in a loop.

    .venv/bin/python bench/load.py [--formations 2000] [--clients 50] [--seconds 30]
                                   [--max-requests 500000] [--work DIR] [--seed 3]
                                   [--workers N] [--client-mode async|threads] [--rebuild-nice N]
                                   [--compare OLD_TREE [--rounds 3]] [--costs]

1. Two LHEO files are generated that differ by one formation (the second lacks
   the last one) and the first is built into WORK/build.
2. ``catalogue serve`` runs on 127.0.0.1 (a free port, loopback only) in a subprocess.
3. Abusive queries (100,000 characters, unbalanced quotes, Whoosh syntax, null
   bytes, odd Unicode, invalid UTF-8) are sent one by one on the idle server:
   each must get a 4xx or a 200 within 100 ms.
4. For ``--seconds`` (and at most ``--max-requests`` requests), ``--clients``
   clients send a fixed mix (titles, Refs, SIRETs, filters, pages, abusive queries)
   while ``catalogue build`` rebuilds the same BUILD folder in a loop, alternating
   the two files. Each client is closed-loop: one keep-alive connection (a new one,
   ``Connection: close``, for each abusive query), its next request as soon as the
   previous answer is read. ``--client-mode async`` (default): the clients are
   coroutines of one event loop, which measures the answer when it arrives;
   ``threads``: one Python thread each, as before — 50 threads taking turns at
   this process's GIL add their own wait to every measured latency. A client answered
   429 honours ``Retry-After``, as a well-behaved client does: it sleeps that long,
   then sends the same request again (each try counts as a request). Its keep-alive
   connection, idle past the server's timeout meanwhile, may be closed just as it is
   used again: the request is then sent again on a new one, as HTTP clients do
   (counted apart; any other connection error fails the run).
5. Reported: requests, statuses, any 5xx (must be 0), wrong answers (a Ref whose
   first result is not that Ref; must be 0), connection errors (must be 0),
   p50/p95/p99 overall, per kind and per abusive query (every answer, 429 included),
   the searches shed (429) per kind, the answers over 100 ms, the CPU seconds of the
   server (all its processes), of the clients and of the rebuilds (to tell a
   server at its limit from a machine busy elsewhere), the rebuilds and their exit
   codes, and the security headers of a page and of an API response.

``--compare OLD_TREE [...]``: the same measure, in the same run, of the server of another
source tree (or several) (``git archive HEAD | tar -x -C OLD_TREE`` before a change), alternating
with this tree's server ``--rounds`` times on the same data and rebuilds (this tree's
``catalogue build``), then the median of each figure per server.

``--costs``: no load; where a request's CPU goes (in this process: parameters, search,
JSON, response; then each server's CPU per request of a few kinds, one worker).

``--workers`` is passed to ``catalogue serve`` (default: its own, one per core).
``--rebuild-nice N`` runs the rebuilds under ``nice -n N``, as a deployment would
run its builds below the server that answers counsellors (default 0: same priority).

Exit status 0 when every check holds, 1 otherwise. Everything it starts stops with it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import http.client
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalogue.generate import generate_formations  # noqa: E402
from catalogue.lheo_export import write_lheo  # noqa: E402

TODAY = dt.date(2026, 11, 29)
ABUSE_BUDGET_S = 0.100
#: uvicorn's keep-alive timeout: a connection idle this long is closed by the server.
KEEP_ALIVE_S = 5.0
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def search_path(**params) -> str:
    return "/api/search?" + urllib.parse.urlencode(params)


def abusive_paths() -> list[tuple[str, str]]:
    """(name, raw request target): what a hostile or clumsy client sends."""
    return [
        ("100k chars", search_path(q="électricien " * 8334)),
        ("100k one word", search_path(q="a" * 100_000)),
        ("unbalanced quote", search_path(q='"électricien du bâtiment')),
        ("unbalanced parens", search_path(q="((cuisine OR (boulanger")),
        ("whoosh field", search_path(q="title:foo AND")),
        ("whoosh syntax", search_path(q='intitule:* OR ref:[a TO z] NOT "x"~3 cuisine^10 comp?ab*')),
        ("null byte", "/api/search?q=%00"),
        ("null in word", "/api/search?q=cui%00sine"),
        ("odd unicode", search_path(q="\u202eenisiuc\u202c \u0301\u0301 𝕮𝖚𝖎𝖘𝖎𝖓𝖊 ﬁ ß İ 🍳 \ufeff\u200b")),
        ("lone surrogate", "/api/search?q=%ED%A0%80"),
        ("invalid utf-8", "/api/search?q=%FF%FE"),
        ("only punctuation", search_path(q="!!! ??? ;;; ***")),
        ("huge limit", search_path(q="cuisine", limit="1000000000000")),
        ("negative offset", search_path(q="cuisine", offset="-1")),
        ("unknown param", search_path(q="cuisine", drop="table")),
        ("bad ref", "/api/formations/..%2F..%2Fetc%2Fpasswd"),
        ("long ref", "/api/formations/" + "A" * 5000),
    ]


ABUSIVE_NAMES = {path: name for name, path in abusive_paths()}


class Mix:
    """The fixed mix of requests, each with what checks its answer."""

    def __init__(self, formations):
        rng = random.Random(0)
        # Refs present in both files (the last formation is only in the first).
        stable = formations[:-1]
        sample = rng.sample(stable, min(200, len(stable)))
        self.refs = [f.numero for f in sample]
        self.titles = [str(f.intitule_formation) for f in sample[:100]]
        self.sirets = sorted({str(f.organisme_formation_responsable.siret_organisme_formation) for f in sample})[:50]
        self.filters = [
            dict(q="", region="76"),
            dict(q="cuisine", departement="31"),
            dict(q="comptable", cpf="true", distance="oui"),
            dict(q="", certifiante="true", esp="non", financeur="2"),
            dict(q="formation", near="Toulouse", rayon_km="50"),
            dict(q="électricien", debut_apres="2027-01-01"),
            dict(q="anglais", limit="100", offset="20"),
        ]
        self.abusive = abusive_paths()

    def pick(self, rng: random.Random) -> tuple[str, str, object]:
        """(kind, path, expected Ref or None)."""
        roll = rng.random()
        if roll < 0.30:
            ref = rng.choice(self.refs)
            return "ref", search_path(q=ref, include_archived="true"), ref
        if roll < 0.55:
            return "title", search_path(q=rng.choice(self.titles), include_archived="true"), None
        if roll < 0.65:
            return "siret", search_path(q=rng.choice(self.sirets), include_archived="true"), None
        if roll < 0.80:
            return "filters", search_path(**rng.choice(self.filters)), None
        if roll < 0.85:
            return "formation", "/api/formations/" + rng.choice(self.refs), None
        if roll < 0.90:
            return "page", rng.choice(["/", "/formations/" + rng.choice(self.refs) + ".html", "/nope"]), None
        return "abusive", rng.choice(self.abusive)[1], None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.wrong: list[str] = []
        self.server_errors: list[str] = []
        self.conn_errors: Counter = Counter()
        self.slow_abuse: list[tuple[str, float]] = []
        self.abuse_latencies: dict[str, list[float]] = defaultdict(list)
        self.shed: Counter = Counter()
        self.keepalive_closed = 0

    def record(self, kind: str, path: str, status: int, seconds: float, problem: str | None) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies[kind].append(seconds)
            if status == 429:
                self.shed[kind] += 1
            if status >= 500:
                self.server_errors.append(f"{status} {path[:120]}")
            if problem:
                self.wrong.append(problem)
            if kind == "abusive":
                self.abuse_latencies[ABUSIVE_NAMES.get(path, "?")].append(seconds)
                if seconds > ABUSE_BUDGET_S:
                    self.slow_abuse.append((path[:60], seconds))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def retry_after(headers: dict[str, str]) -> float:
    """The seconds a 429 asks to wait (``Retry-After``, whole seconds; 1 when absent or unreadable)."""
    try:
        return max(0.0, min(float(headers.get("retry-after", "1")), 60.0))
    except ValueError:
        return 1.0


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers


def check_answer(kind: str, status: int, body: bytes, expected) -> str | None:
    if status != 200 or kind not in ("ref", "title", "siret"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return f"{kind}: body is not JSON"
    results = data.get("results", [])
    if kind == "ref" and (not results or results[0]["ref"] != expected):
        return f"ref {expected}: first result {results[0]['ref'] if results else None}"
    if kind in ("title", "siret") and not results:
        return f"{kind}: no result"
    return None


def client(port: int, mix: Mix, stats: Stats, seed: int, deadline: float, budget: list[int], budget_lock) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    again = None  # the request refused with 429, sent again after its Retry-After
    while time.monotonic() < deadline:
        with budget_lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        kind, path, expected = again or mix.pick(rng)
        again = None
        if kind == "abusive":
            try:
                status, headers, body, seconds = raw_get(port, path, with_headers=True)
            except (OSError, ValueError, IndexError) as exc:
                with stats.lock:
                    stats.conn_errors[f"{kind}: {type(exc).__name__}"] += 1
                continue
            stats.record(kind, path, status, seconds, None)
            if status == 429:
                again = (kind, path, expected)
                time.sleep(max(0.0, min(retry_after(headers), deadline - time.monotonic())))
            continue
        start = time.perf_counter()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            with stats.lock:
                stats.conn_errors[f"{kind}: {type(exc).__name__}"] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        seconds = time.perf_counter() - start
        stats.record(kind, path, response.status, seconds, check_answer(kind, response.status, body, expected))
        if response.getheader("connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        if response.status == 429:
            again = (kind, path, expected)
            wait = retry_after({"retry-after": response.getheader("retry-after", "1")})
            time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
    conn.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, closed): one HTTP/1.1 answer with a Content-Length, or read to the end when it
    has none."""
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers = parse_head(head[:-4])
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        raise ValueError("chunked answer: not expected from this server")
    else:
        body = await reader.read()
    return status, headers, body, headers.get("connection", "").lower() == "close"


async def async_raw_get(port: int, path: str) -> tuple[int, dict[str, str], bytes, float]:
    """:func:`raw_get` on the event loop: its own connection, ``Connection: close``."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        try:
            await writer.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # over uvicorn's limit: its 400 is already on the way
        received = b""
        try:
            while chunk := await reader.read(65536):
                received += chunk
        except ConnectionResetError:
            if not received:
                raise
    finally:
        writer.close()
    seconds = time.perf_counter() - start
    head, _, body = received.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    return status, headers, body, seconds


async def async_client(port: int, mix: Mix, stats: Stats, seed: int, deadline: float, budget: list[int]) -> None:
    """One client: one keep-alive connection, a request as soon as the previous answer is read (as
    :func:`client`), on the event loop of :func:`run_async_clients`."""
    rng = random.Random(seed)
    reader = writer = None
    again = None  # the request refused with 429, sent again after its Retry-After
    answered, on_connection = time.monotonic(), 0  # the last answer on the connection, and their count
    while time.monotonic() < deadline and budget[0] > 0:
        budget[0] -= 1
        kind, path, expected = again or mix.pick(rng)
        again = None
        if kind == "abusive":
            try:
                status, headers, body, seconds = await async_raw_get(port, path)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                stats.conn_errors[f"{kind}: {type(exc).__name__}"] += 1
                continue
            stats.record(kind, path, status, seconds, None)
            if status == 429:
                again = (kind, path, expected)
                await asyncio.sleep(max(0.0, min(retry_after(headers), deadline - time.monotonic())))
            continue
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                on_connection = 0
            start = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            status, headers, body, closed = await read_response(reader)
            seconds = time.perf_counter() - start
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            idle = time.monotonic() - answered
            if (isinstance(exc, asyncio.IncompleteReadError) and not exc.partial and on_connection
                    and idle > KEEP_ALIVE_S - 1):
                # The server closed the connection, idle past its keep-alive timeout, as this request
                # left: what an HTTP client does then (urllib3, browsers) is send it again on a new one.
                stats.keepalive_closed += 1
                again = (kind, path, expected)
            else:
                stats.conn_errors[f"{kind}: {type(exc).__name__} on a connection's request {on_connection + 1}, "
                                  f"idle {idle:.1f} s before"] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        stats.record(kind, path, status, seconds, check_answer(kind, status, body, expected))
        answered, on_connection = time.monotonic(), on_connection + 1
        if closed:
            writer.close()
            reader = writer = None
        if status == 429:
            again = (kind, path, expected)
            await asyncio.sleep(max(0.0, min(retry_after(headers), deadline - time.monotonic())))
    if writer is not None:
        writer.close()


def run_async_clients(port: int, mix: Mix, stats: Stats, clients: int, seed: int, deadline: float,
                      max_requests: int) -> None:
    async def all_clients() -> None:
        budget = [max_requests]
        await asyncio.gather(*(async_client(port, mix, stats, seed * 1000 + i, deadline, budget)
                               for i in range(clients)))

    asyncio.run(all_clients())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its living descendants (the server's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = defaultdict(list)
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(entry))
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(children.get(current, ()))
    return total


def own_cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        start = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body, time.perf_counter() - start
    finally:
        conn.close()


def raw_get(port: int, path: str, with_headers: bool = False):
    """One request on its own connection, read until the server closes it.

    A request line past uvicorn's limit (about 128 KiB) gets a 400 and the connection
    closed while the client may still be sending: the 400 is read before the reset.
    """
    start = time.perf_counter()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            if not received:
                raise
    seconds = time.perf_counter() - start
    head, _, body = received.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    return (status, headers, body, seconds) if with_headers else (status, body, seconds)


def build_command(content: Path, build_dir: Path) -> list[str]:
    return [sys.executable, "-m", "catalogue.cli", "build", "--content", str(content), "--build", str(build_dir),
            "--today", TODAY.isoformat(), "--quiet"]


def rebuild_loop(files: list[Path], build_dir: Path, stop: threading.Event, results: list, nice: int = 0) -> None:
    i = 1  # the first file is already published: start with the other
    while not stop.is_set():
        start = time.monotonic()
        command = build_command(files[i % 2], build_dir)
        if nice:
            command = ["nice", "-n", str(nice)] + command
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        results.append((files[i % 2].name, done.returncode, time.monotonic() - start, done.stderr.strip()[-300:]))
        i += 1


def wait_until_up(port: int, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            get(port, "/")
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not answer in time")


def start_server(root: Path, build_dir: Path, workers) -> tuple[subprocess.Popen, int]:
    """``catalogue serve`` of the source tree ``root`` on a free loopback port, once it answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "catalogue.cli", "serve", "--build", str(build_dir), "--host", "127.0.0.1",
         "--port", str(port)] + ([] if workers is None else ["--workers", str(workers)]),
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_until_up(port, server)
    return server, port


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)


def measure(args, label: str, root: Path, mix: Mix, files: list[Path], build_dir: Path,
            failures: list[str]) -> dict[str, float]:
    """One server (of the tree ``root``) checked, then loaded during rebuilds: its summary figures."""
    print(f"\n=== server: {label} ({root})")
    server, port = start_server(root, build_dir, args.workers)
    try:
        for ref in mix.refs[:5]:
            get(port, search_path(q=ref, include_archived="true"))  # warm up: open the index once

        # -- security headers --------------------------------------------------------
        print("\nsecurity headers:")
        ref = mix.refs[0]
        for path in ("/", f"/formations/{ref}.html", search_path(q="cuisine"), f"/api/formations/{ref}"):
            status, headers, _, _ = get(port, path)
            missing = [h for h in SECURITY_HEADERS if h not in headers]
            print(f"  {status} {path[:50]:50} {'ok' if not missing else 'MISSING ' + ', '.join(missing)}")
            if missing:
                failures.append(f"{label} {path}: missing {missing}")
        csp = get(port, "/")[1].get("content-security-policy", "")
        print(f"  CSP: {csp}")
        if "script-src 'self'" not in csp or "unsafe-inline" in csp:
            failures.append(f"{label}: weak CSP: {csp}")

        # -- abusive queries, idle server ------------------------------------------------
        print(f"\nabusive queries, one at a time (each: 4xx or 200 within {ABUSE_BUDGET_S * 1000:.0f} ms):")
        for name, path in mix.abusive:
            timings = []
            for _ in range(3):
                status, body, seconds = raw_get(port, path)
                timings.append(seconds)
            worst = max(timings)
            ok = (status == 200 or 400 <= status < 500) and worst <= ABUSE_BUDGET_S
            print(f"  {'ok ' if ok else 'BAD'} {name:18} {status} worst of 3 {worst * 1000:6.1f} ms  {body[:70]!r}")
            if not ok:
                failures.append(f"{label} abusive {name}: {status} in {worst * 1000:.0f} ms")

        # -- load during rebuilds --------------------------------------------------------
        stats = Stats()
        stop = threading.Event()
        rebuilds: list = []
        rebuilder = threading.Thread(target=rebuild_loop, args=(files, build_dir, stop, rebuilds, args.rebuild_nice),
                                     daemon=True)
        cpu_before = (cpu_seconds(server.pid), own_cpu_seconds(resource.RUSAGE_SELF),
                      own_cpu_seconds(resource.RUSAGE_CHILDREN))
        started = time.monotonic()
        deadline = started + args.seconds
        rebuilder.start()
        if args.client_mode == "async":
            run_async_clients(port, mix, stats, args.clients, args.seed, deadline, args.max_requests)
        else:
            budget, budget_lock = [args.max_requests], threading.Lock()
            threads = [
                threading.Thread(
                    target=client,
                    args=(port, mix, stats, args.seed * 1000 + i, deadline, budget, budget_lock),
                    daemon=True,
                )
                for i in range(args.clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(args.seconds + 60)
        elapsed = time.monotonic() - started
        cpu_load = (cpu_seconds(server.pid), own_cpu_seconds(resource.RUSAGE_SELF))
        stop.set()
        rebuilder.join(600)
        rebuild_cpu = own_cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_before[2]
    finally:
        stop_server(server)

    total = sum(stats.statuses.values())
    print(f"\nload: {args.clients} clients ({args.client_mode}), server workers: {args.workers or 'default'}, "
          f"rebuilds at nice {args.rebuild_nice}, "
          f"{elapsed:.1f} s, {total} requests ({total / elapsed:.0f}/s)")
    server_cpu, client_cpu = cpu_load[0] - cpu_before[0], cpu_load[1] - cpu_before[1]
    print(f"  CPU seconds (2 cores = {2 * elapsed:.0f} s at most): server {server_cpu:.1f}"
          f" ({1000 * server_cpu / max(total, 1):.2f} ms a request), clients {client_cpu:.1f}"
          f" ({1000 * client_cpu / max(total, 1):.2f} ms a request), rebuilds {rebuild_cpu:.1f}"
          f" (until the last one ended)")
    print("  statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(stats.statuses.items())))
    print(f"  5xx: {len(stats.server_errors)}   wrong answers: {len(stats.wrong)}   "
          f"connection errors: {sum(stats.conn_errors.values())}   idle connections closed by the server "
          f"(keep-alive timeout; the request sent again on a new one): {stats.keepalive_closed}")
    for line in stats.server_errors[:5]:
        print(f"    5xx: {line}")
    for line in stats.wrong[:5]:
        print(f"    wrong: {line}")
    for line, n in stats.conn_errors.most_common(5):
        print(f"    connection: {line} × {n}")
    everything = [s for values in stats.latencies.values() for s in values]
    summary = {"requests/s": total / elapsed, "server CPU ms/request": 1000 * server_cpu / max(total, 1)}
    print("  every answer (429 included); shed: answered 429 (then sent again after Retry-After)")
    print(f"  {'kind':10} {'n':>7} {'shed':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'>100 ms':>8}")
    for kind, values in sorted(stats.latencies.items()) + [("ALL", everything)]:
        p50, p95, p99 = (percentile(values, p) * 1000 for p in (50, 95, 99))
        shed = sum(stats.shed.values()) if kind == "ALL" else stats.shed[kind]
        over = sum(v > ABUSE_BUDGET_S for v in values)
        print(f"  {kind:10} {len(values):7} {shed:6} {p50:8.1f} {p95:8.1f} {p99:8.1f} {max(values) * 1000:8.1f}"
              f" {over:8}")
        summary.update({f"{kind} p50": p50, f"{kind} p95": p95, f"{kind} p99": p99})
    searches = ("ref", "title", "siret", "filters")
    normal = sum(len(stats.latencies[k]) for k in searches)
    shed_normal = sum(stats.shed[k] for k in searches)
    print(f"  normal searches shed: {shed_normal} of {normal} ({100 * shed_normal / max(normal, 1):.1f} %)")
    summary["normal searches shed %"] = 100 * shed_normal / max(normal, 1)
    summary["answers over 100 ms %"] = 100 * sum(v > ABUSE_BUDGET_S for v in everything) / max(len(everything), 1)
    print("  abusive, by query:")
    for name, _ in mix.abusive:
        values = stats.abuse_latencies.get(name, [])
        if values:
            p50, p95, p99 = (percentile(values, p) * 1000 for p in (50, 95, 99))
            over = sum(v > ABUSE_BUDGET_S for v in values)
            print(f"    {name:18} {len(values):5} {p50:8.1f} {p95:8.1f} {p99:8.1f} {max(values) * 1000:8.1f}"
                  f"   over {ABUSE_BUDGET_S * 1000:.0f} ms: {over}")
    abusive = len(stats.latencies["abusive"])
    print(f"  abusive over {ABUSE_BUDGET_S * 1000:.0f} ms under load: {len(stats.slow_abuse)} of {abusive}")
    summary["abusive over 100 ms %"] = 100 * len(stats.slow_abuse) / max(abusive, 1)
    print(f"  rebuilds during the load: {len(rebuilds)}")
    for name, code, seconds, stderr in rebuilds:
        print(f"    {name}: exit {code} in {seconds:.1f} s" + (f"  {stderr}" if code else ""))
    if stats.server_errors:
        failures.append(f"{label}: {len(stats.server_errors)} 5xx")
    if stats.wrong:
        failures.append(f"{label}: {len(stats.wrong)} wrong answers")
    if stats.conn_errors:
        failures.append(f"{label}: {sum(stats.conn_errors.values())} connection errors")
    if not any(code == 0 for _, code, _, _ in rebuilds):
        failures.append(f"{label}: no rebuild was published during the load")
    if any(code != 0 for _, code, _, _ in rebuilds):
        failures.append(f"{label}: a rebuild failed")
    return summary


def request_costs(args, mix: Mix, build_dir: Path, servers: list[tuple[str, Path]]) -> None:
    """``--costs``: where a request's CPU goes, without the load. In this process, per search of the
    mix: its parameters read, :func:`search`, its JSON, its Response. Then, for each server (one
    worker, 2 keep-alive clients, no rebuild), the server's CPU per request of a few kinds, the
    servers alternated, median of ``--rounds``."""
    import statistics

    from starlette.datastructures import QueryParams
    from starlette.responses import Response

    from catalogue.search.query import SearchParams, search

    rng = random.Random(1)
    queries = [path.split("?", 1)[1].encode() for kind, path, _ in (mix.pick(rng) for _ in range(800))
               if kind in ("ref", "title", "siret", "filters")]
    params = [SearchParams.model_validate(dict(QueryParams(q))) for q in queries]
    answers = [search(build_dir, p) for p in params]  # and warm up
    bodies = [a.model_dump_json() for a in answers]
    steps = {
        "parameters (pydantic)": lambda: [SearchParams.model_validate(dict(QueryParams(q))) for q in queries],
        "search()": lambda: [search(build_dir, p) for p in params],
        "JSON of the answer": lambda: [a.model_dump_json() for a in answers],
        "Response built": lambda: [Response(b, media_type="application/json") for b in bodies],
    }
    print(f"\nin this process, CPU per search of the mix ({len(queries)} searches, median of 3 passes):")
    for name, step in steps.items():
        passes = []
        for _ in range(3):
            start = time.process_time()
            step()
            passes.append((time.process_time() - start) / len(queries) * 1e6)
        print(f"  {name:24} {statistics.median(passes):8.0f} µs")

    paths = {"formation JSON": f"/api/formations/{mix.refs[0]}", "page": "/", "422": "/api/search?limit=0",
             "search (Ref)": search_path(q=mix.refs[0], include_archived="true"),
             "search (title)": search_path(q=mix.titles[0], include_archived="true")}
    count = 2000

    statuses: Counter = Counter()

    async def hammer(port: int, path: str, n: int) -> None:
        # Two clients: the server never idles, and no search waits long enough to be refused.
        async def one() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(n // 2):
                writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                statuses[(await read_response(reader))[0]] += 1
            writer.close()

        await asyncio.gather(*(one() for _ in range(2)))

    cpu: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _ in range(args.rounds):
        for label, root in servers:
            server, port = start_server(root, build_dir, 1)
            try:
                for kind, path in paths.items():
                    asyncio.run(hammer(port, path, 200))
                    before = cpu_seconds(server.pid)
                    asyncio.run(hammer(port, path, count))
                    cpu[(label, kind)].append((cpu_seconds(server.pid) - before) / count * 1e6)
            finally:
                stop_server(server)
    labels = [label for label, _ in servers]
    print(f"\nserver CPU per request, µs (1 worker, 2 keep-alive clients, {count} requests a kind, "
          f"median of {args.rounds}; statuses: {dict(sorted(statuses.items()))}):")
    print(f"  {'':16}" + "".join(f"{label:>10}" for label in labels))
    for kind in paths:
        print(f"  {kind:16}" + "".join(f"{statistics.median(cpu[(label, kind)]):10.0f}" for label in labels))


def print_medians(results: dict[str, list[dict[str, float]]]) -> None:
    """Each figure's median over the rounds, one column per server."""
    import statistics

    labels = list(results)
    print(f"\nmedians of {min(len(r) for r in results.values())} rounds, servers alternated in this run:")
    print(f"  {'':26}" + "".join(f"{label:>12}" for label in labels))
    for key in results[labels[0]][0]:
        cells = [statistics.median(r.get(key, float("nan")) for r in results[label]) for label in labels]
        print(f"  {key:26}" + "".join(f"{value:12.1f}" for value in cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formations", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None,
                        help="catalogue serve --workers (default: the server's own default)")
    parser.add_argument("--rebuild-nice", type=int, default=0, choices=range(0, 20), metavar="0-19",
                        help="run the rebuilds under nice -n N (default 0: the same priority as the server)")
    parser.add_argument("--client-mode", choices=("async", "threads"), default="async",
                        help="async: the clients share one event loop (one connection each); "
                             "threads: one Python thread each, all in this process's GIL")
    parser.add_argument("--compare", type=Path, metavar="OLD_TREE", nargs="+",
                        help="also measure the server of this source tree (or these), alternating with this one")
    parser.add_argument("--rounds", type=int, default=3, help="with --compare: rounds of (old, new) (default 3)")
    parser.add_argument("--costs", action="store_true",
                        help="only where a request's CPU goes: in this process per search step, then the "
                             "server's CPU per request of a few kinds (each server, one worker, no load)")
    parser.add_argument("--work", type=Path, help="Working folder (default: a temporary one, removed at the end).")
    args = parser.parse_args()
    if not (1 <= args.clients <= 500 and 0 < args.seconds <= 600 and 1 <= args.rounds <= 10):
        parser.error("1 to 500 clients, at most 600 seconds, 1 to 10 rounds")
    for tree in args.compare or ():
        if not (tree / "catalogue" / "server.py").is_file():
            parser.error(f"{tree}: not a source tree of catalogue")

    work = args.work or Path(tempfile.mkdtemp(prefix="catalogue-load-"))
    work.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    try:
        formations = list(generate_formations(args.formations, seed=args.seed))
        files = [work / "a.xml", work / "b.xml"]
        write_lheo(formations, files[0])
        write_lheo(formations[:-1], files[1])
        build_dir = work / "build"
        start = time.monotonic()
        first = subprocess.run(build_command(files[0], build_dir), cwd=ROOT, capture_output=True, text=True)
        if first.returncode != 0:
            print(first.stderr)
            return 1
        print(f"catalogue: {args.formations} formations, first build {time.monotonic() - start:.1f} s")
        mix = Mix(formations)
        servers = [("old" if len(args.compare) == 1 else tree.name, tree.resolve()) for tree in args.compare or ()]
        servers.append(("new" if args.compare else "this", ROOT))
        if args.costs:
            request_costs(args, mix, build_dir, servers)
            return 0
        results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in servers}
        for _ in range(args.rounds if args.compare else 1):
            for label, root in servers:
                results[label].append(measure(args, label, root, mix, files, build_dir, failures))
        if args.compare:
            print_medians(results)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\nRESULT: " + ("ok" if not failures else "FAILED: " + "; ".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())

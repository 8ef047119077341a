"""The server under load: N concurrent users (default 50) on 127.0.0.1 (issue 17's targets).

Builds (or reuses, with --keep) a library of 100,000 items the way web_latency.py does, starts
`sashie serve` on it in its own process, and lets N simulated users search at once until
--requests requests are answered or --seconds have passed. Each user, in a loop: a text
search (English or Japanese concept name), a one-image or three-image search, or a feedback
round on their last search, then a pause of --think seconds (uniform 0..2x; 0 for none). One
more client asks /api/info twice a second throughout. Prints errors, expired searches, p50 /
p95 / max latency of each kind, throughput, and the server's memory: idle (vectors loaded)
and peak during the run.

    python benchmarks/server_load.py [--users 50] [--items 100000] [--keep DIR]
        [--requests 1500] [--seconds 180] [--think 1.0] [--code DIR]

--big-images measures memory instead (issue 39, point 5): bursts of 1, 4, 8 and 16 clients at
once, each sending one search with two 6000 x 6600 PNG page scans, and prints the server's
peak memory during each burst and its memory a few seconds after, against its decoding
budget (SASHIE_DECODE_MB), with how many searches were answered and how many were told to
come back (503).

    python benchmarks/server_load.py --big-images [--items 5000] [--keep DIR] [--code DIR]

--code DIR runs the server from another checkout (e.g. a `git worktree` of an older commit),
so the same load can be measured on both.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from sashie.eval.references import reference_pictures
from sashie.eval.world.artists import Artists
from sashie.eval.world.vocab import vocabulary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from web_latency import build

KINDS = ("text", "image", "three images", "feedback")
MIX = (0.55, 0.15, 0.1, 0.2)


def memory(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(library: Path, port: int, code: str | None) -> subprocess.Popen:
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = code
    process = subprocess.Popen(
        [sys.executable, "-m", "sashie", "serve", str(library), "--port", str(port)],
        env=env,
        cwd=code or None,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=5)
            return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not start")


def pictures(count: int) -> list[bytes]:
    vocab = vocabulary()
    out = []
    for key in vocab.query_seen[:count]:
        buffer = io.BytesIO()
        reference_pictures(Artists(), vocab.by_key[key], 1, seed=0)[0].save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


class Load:
    """The simulated users and what they measured."""

    def __init__(self, base: str, args: argparse.Namespace) -> None:
        vocab = vocabulary()
        self.words = [vocab.by_key[k].en for k in vocab.query_seen] + [
            vocab.by_key[k].ja for k in vocab.query_seen
        ]
        self.images = pictures(12)
        self.base = base
        self.args = args
        self.latencies: dict[str, list[float]] = {kind: [] for kind in (*KINDS, "info")}
        self.errors: dict[str, int] = dict.fromkeys((*KINDS, "info"), 0)
        self.expired = 0
        self.samples: list[str] = []  # the first few error messages
        self.answered = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def record(self, kind: str, seconds: float, response: httpx.Response | None) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            if kind != "info":
                self.answered += 1
                if self.answered >= self.args.requests:
                    self.stop.set()
            if response is None or response.status_code != 200:
                self.errors[kind] += 1
                text = "no response" if response is None else response.text[:120]
                if "expired" in text:
                    self.expired += 1
                if len(self.samples) < 5:
                    self.samples.append(f"{kind}: {text}")

    def call(self, http: httpx.Client, kind: str, send) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = send()
        except httpx.HTTPError:
            response = None
        self.record(kind, time.perf_counter() - started, response)
        return response

    def user(self, seed: int) -> None:
        rng = random.Random(seed)
        last: dict | None = None
        with httpx.Client(base_url=self.base, timeout=120) as http:
            while not self.stop.is_set():
                kind = rng.choices(KINDS, MIX)[0]
                if kind == "feedback" and last is None:
                    kind = "text"
                if kind == "text":
                    data = {"text": rng.choice(self.words)}
                    response = self.call(
                        http, kind, lambda d=data: http.post("/api/search", data=d)
                    )
                elif kind in ("image", "three images"):
                    chosen = rng.sample(self.images, 1 if kind == "image" else 3)
                    files = [("images", (f"{i}.png", b, "image/png")) for i, b in enumerate(chosen)]
                    response = self.call(
                        http, kind, lambda f=files: http.post("/api/search", files=f)
                    )
                else:
                    assert last is not None
                    items = [r["item"] for r in last["results"]]
                    marks = {
                        "query": last["query"],
                        "relevant": items[1:4],
                        "irrelevant": items[:1],
                    }
                    response = self.call(
                        http, kind, lambda m=marks: http.post("/api/feedback", json=m)
                    )
                if response is not None and response.status_code == 200 and kind != "feedback":
                    last = response.json()
                if self.args.think > 0:
                    self.stop.wait(rng.uniform(0, 2 * self.args.think))

    def prober(self) -> None:
        with httpx.Client(base_url=self.base, timeout=120) as http:
            while not self.stop.is_set():
                self.call(http, "info", lambda: http.get("/api/info"))
                self.stop.wait(0.5)


def big_scan(seed: int) -> bytes:
    """A 6000 x 6600 PNG like a page scan: paper, ruled columns, ink strokes (a few MB)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    page = Image.new("RGB", (6000, 6600), (236, 226, 204))
    draw = ImageDraw.Draw(page)
    for column in range(60, 5900, 240):
        draw.line([(column, 200), (column, 6400)], fill=(90, 60, 40), width=4)
        for _ in range(40):
            x, y = column + rng.randint(20, 200), rng.randint(200, 6300)
            draw.line(
                [(x, y), (x + rng.randint(-60, 60), y + rng.randint(20, 160))], fill=0, width=9
            )
    out = io.BytesIO()
    page.save(out, "PNG", compress_level=6)
    return out.getvalue()


def big_images(base: str, pid: int, budget_mb: float) -> None:
    """Bursts of clients, each with one search of two large scans: memory against clients."""
    scans = [big_scan(seed) for seed in range(2)]
    files = [("images", (f"scan{i}.png", data, "image/png")) for i, data in enumerate(scans)]
    idle = memory(pid)
    print(
        f"two {len(scans[0]) / 2**20:.1f} MB PNGs of 6000 x 6600 a search; decoding budget "
        f"{budget_mb:g} MiB; server idle {idle / 2**20:.0f} MiB; {os.cpu_count()} cores"
    )
    print(
        "| clients at once | answered | told to retry (503) | other | seconds | peak MiB "
        "| after 5 s MiB |"
    )
    print("|---|---|---|---|---|---|---|")
    codes: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            code = httpx.post(f"{base}/api/search", files=files, timeout=300).status_code
        except httpx.HTTPError:
            code = 0
        with lock:
            codes.append(code)

    for clients in (1, 4, 8, 16):
        codes.clear()
        threads = [threading.Thread(target=one) for _ in range(clients)]
        started = time.perf_counter()
        peak = memory(pid)
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, memory(pid))
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        time.sleep(5)
        print(
            f"| {clients} | {codes.count(200)} | {codes.count(503)} | "
            f"{len(codes) - codes.count(200) - codes.count(503)} | {seconds:.1f} | "
            f"{peak / 2**20:.0f} | {memory(pid) / 2**20:.0f} |"
        )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--items", type=int, help="library size (100,000; --big-images: 5,000)")
    parser.add_argument("--big-images", action="store_true", help="memory under large images")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--think", type=float, default=1.0, help="mean pause between requests")
    parser.add_argument("--keep", type=Path, help="build the library here once, then reuse it")
    parser.add_argument("--code", help="serve from this checkout instead")
    args = parser.parse_args()
    args.items = args.items or (5_000 if args.big_images else 100_000)

    root = args.keep or Path(tempfile.mkdtemp(prefix="sashie-load-"))
    library = root / "lib"
    if not library.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        build(root, args.items)
    port = free_port()
    server = start_server(library, port, args.code)
    base = f"http://127.0.0.1:{port}"
    try:
        httpx.post(f"{base}/api/search", data={"text": "warm up"}, timeout=120)
        if args.big_images:
            budget = float(os.environ.get("SASHIE_DECODE_MB", 512))
            big_images(base, server.pid, budget)
            return
        idle = memory(server.pid)
        load = Load(base, args)
        peak = idle
        threads = [threading.Thread(target=load.user, args=(i,)) for i in range(args.users)]
        threads.append(threading.Thread(target=load.prober))
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        while not load.stop.wait(0.1):
            peak = max(peak, memory(server.pid))
            if time.perf_counter() - started > args.seconds:
                load.stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        peak = max(peak, memory(server.pid))
    finally:
        server.terminate()
        server.wait()

    print(
        f"{args.users} users, think {args.think:g} s (mean), {args.items:,} items, "
        f"{os.cpu_count()} cores; server from {args.code or 'this checkout'}"
    )
    print("| request | count | errors | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for kind in (*KINDS, "info"):
        times = load.latencies[kind]
        print(
            f"| {kind} | {len(times)} | {load.errors[kind]} | {percentile(times, 50):.0f} | "
            f"{percentile(times, 95):.0f} | {max(times, default=0) * 1000:.0f} |"
        )
    total_errors = sum(load.errors.values())
    print(
        f"answered {load.answered} searches and feedback rounds in {elapsed:.1f} s "
        f"({load.answered / elapsed:.1f} a second); errors {total_errors}, "
        f"expired searches {load.expired}"
    )
    print(
        f"server memory: idle {idle / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB "
        f"({peak / idle:.2f}x)"
    )
    for sample in load.samples:
        print("  e.g.", sample)


if __name__ == "__main__":
    main()

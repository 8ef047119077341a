"""Labelling speed and memory: 1,140,000 stored vectors (the seed paper's filtered index)
over 1,000 classes, `prompt` beside `coder` in the same run.

The classes are the first 1,000 of the evaluation world's label file (EN and JA names, CLDR
keywords as attributes), their text bank encoded by the demo model (timed apart: it is made
once a run). The vectors are written to a library vector file (float16) and scored block by
block from its memory map, as `sashie classify` scores a library; they are drawn around the
classes' own prompt vectors (a class each, plus noise), so that close calls, and so the
re-rank, happen about as often as on real items. Prints a table: seconds, items a second,
and the peak working memory (anonymous resident memory above the start, sampled: the
memory-mapped file's own pages are not counted), and the share of items re-ranked.

    python benchmarks/classify_speed.py [--rows 1140000] [--classes 1000]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from sashie.classify.bank import build_bank
from sashie.classify.coder import BLOCK, Scoring, best_two, class_scores, in_blocks
from sashie.encoders import load_encoder
from sashie.eval.world.labels import world_label_set
from sashie.eval.world.vocab import vocabulary
from sashie.store.vectors import VectorFile

NOISE = 1.2  # how far a drawn vector is from its class's prompt vector (norm of the noise)


def anonymous_bytes() -> int:
    """Resident memory that is not a mapped file (the float16 vectors' pages are not counted:
    they are the file's, shared with the page cache)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakMemory:
    """The highest anonymous resident memory while it runs, sampled every 5 ms."""

    def __enter__(self) -> PeakMemory:
        self.start = anonymous_bytes()
        self.peak = self.start
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, anonymous_bytes())
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()

    @property
    def extra(self) -> int:
        return self.peak - self.start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_140_000)
    parser.add_argument("--classes", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    encoder = load_encoder("sashie-demo")
    labels = world_label_set(vocabulary().concepts[: args.classes])

    started = time.perf_counter()
    prompt_bank = build_bank(labels, encoder.encode_texts, kinds=("names",))
    prompt_bank_s = time.perf_counter() - started
    started = time.perf_counter()
    bank = build_bank(labels, encoder.encode_texts)
    coder_bank_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        files = VectorFile(Path(tmp), encoder.dim)
        written = 0
        for start in range(0, args.rows, 100_000):
            n = min(100_000, args.rows - start)
            noise = rng.standard_normal((n, encoder.dim)).astype(np.float32)
            noise *= NOISE / np.sqrt(encoder.dim)
            block = bank.prompt[rng.integers(0, len(bank.classes), n)] + noise
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            ids = np.arange(start, start + n, dtype=np.int64)
            written = files.write_at(written, block, ids)
        vectors = files.vectors(written)  # float16, memory-mapped

        timings = {}
        for name, scoring, used in (
            ("prompt", Scoring("prompt"), prompt_bank),
            ("coder, no re-rank", Scoring("coder", rerank=False), bank),
            ("coder", Scoring("coder"), bank),
        ):
            gc.collect()
            with PeakMemory() as memory:
                started = time.perf_counter()
                for block in in_blocks(vectors):
                    best_two(class_scores(used, block, scoring))
                seconds = time.perf_counter() - started
            timings[name] = (seconds, memory.extra)
        close = 0
        for block in in_blocks(vectors):
            top = np.sort(class_scores(bank, block, Scoring("coder", rerank=False)), axis=1)
            close += int((top[:, -1] - top[:, -2] < Scoring().margin).sum())

    sizes = (
        f"{len(bank.names)} names, {len(bank.texts)} attribute and analogy texts, "
        f"{len(bank.pairs)} one-vs-one pairs"
    )
    print(
        f"{args.rows:,} x {encoder.dim} stored vectors (float16, memory-mapped) over "
        f"{len(bank.classes):,} classes ({sizes}), blocks of {BLOCK} rows"
    )
    print(
        f"text banks: prompt {prompt_bank_s:.1f} s, coder {coder_bank_s:.1f} s (encoded once a run)"
    )
    print(f"| {'method':<20} | {'seconds':>8} | {'items/s':>10} | {'peak working memory':>19} |")
    print(f"|{'-' * 22}|{'-' * 10}|{'-' * 12}|{'-' * 21}|")
    for name, (seconds, extra) in timings.items():
        print(
            f"| {name:<20} | {seconds:8.1f} | {args.rows / seconds:10,.0f} | "
            f"{extra / 2**20:15.0f} MiB |"
        )
    print(
        f"re-ranked (best two within {Scoring().margin}): {close:,} items "
        f"({close / args.rows:.1%}); target: coder <= 60 s"
    )


if __name__ == "__main__":
    main()

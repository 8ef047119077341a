"""Relevance feedback with a simulated user: which learner helps most (issue 6's comparison).

    python benchmarks/filter.py --keep /tmp/fb      # makes and indexes a 2,000-page world
    python benchmarks/feedback.py --library /tmp/fb/library --world /tmp/fb/world

For every query concept (24 seen, 12 held-out; English names) the user searches by text, then
in each of 3 rounds marks the first 10 results not yet marked, relevant or not as the ground
truth says (an item is relevant when it matches an illustration of the concept at IoU >= 0.5,
as in `sashie bench`), and the search is refined with all marks so far. Printed: mean
Precision@100 after rounds 0-3 for each learner, and the time of one feedback round on
1,140,000 vectors.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from sashie.eval.truth import item_concepts
from sashie.eval.world import read_truth
from sashie.eval.world.vocab import vocabulary
from sashie.library import Library
from sashie.search.feedback import FEEDBACK_LEARNERS, refine
from sashie.search.ranking import VectorIndex

ROUNDS = 3
MARKS = 10
SCALE_ROWS = 1_140_000


def simulate(lib: Library, truth: list[dict], keys: list[str], learner: str) -> np.ndarray:
    """P@100 after rounds 0..ROUNDS, one row per concept."""
    index = lib.index()
    excluded = lib.filter.excluded_rows(None)
    rows = lib.items(index.item_ids.tolist())
    concepts = dict(
        zip(
            index.item_ids.tolist(),
            item_concepts([(r.page, r.bbox) for r in rows], truth, parts=True),
        )
    )
    by_key = vocabulary().by_key
    out = np.zeros((len(keys), ROUNDS + 1))
    for n, key in enumerate(keys):
        vector = lib.query(by_key[key].en).vector
        ranking = [h.item for h in lib.search(vector, 1000)]
        relevant: list[int] = []
        irrelevant: list[int] = []
        for round_ in range(ROUNDS + 1):
            out[n, round_] = np.mean([key in concepts[i] for i in ranking[:100]])
            if round_ == ROUNDS:
                break
            marked = set(relevant) | set(irrelevant)
            for item in [i for i in ranking if i not in marked][:MARKS]:
                (relevant if key in concepts[item] else irrelevant).append(item)
            if relevant:  # else the user reads on down the same ranking
                ids, _ = refine(
                    index, vector, relevant, irrelevant, learner=learner, k=1000, exclude=excluded
                )
                ranking = ids.tolist()
    return out


def scale_index(lib: Library) -> VectorIndex:
    """SCALE_ROWS vectors drawn from the library's, slightly jittered."""
    base = lib.index()
    rng = np.random.default_rng(0)
    big = base.vectors[rng.integers(0, len(base), SCALE_ROWS)]
    big += rng.normal(0, 0.01, big.shape).astype(np.float32)
    return VectorIndex(np.ascontiguousarray(big), np.arange(SCALE_ROWS))


def round_time(index: VectorIndex, learner: str) -> float:
    """Seconds of one feedback round (5 relevant, 5 irrelevant marks), median of 3, warm."""
    times = []
    for seed in range(4):
        started = time.perf_counter()
        refine(
            index,
            index.vectors[seed],
            list(range(1, 6)),
            list(range(6, 11)),
            learner=learner,
            seed=seed,
        )
        times.append(time.perf_counter() - started)
    return float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--world", type=Path, required=True)
    args = parser.parse_args()
    lib = Library(args.library)
    truth = read_truth(args.world)
    vocab = vocabulary()
    print(
        f"{lib.info()['items']} items; filter {'on' if lib.filter.exists else 'off'}; "
        f"{MARKS} marks a round, {ROUNDS} rounds\n"
    )
    header = (
        "| learner        | concepts | P@100 r0 | r1    | r2    | r3    | "
        "one round on 1.14M vectors |"
    )
    print(header)
    print(
        "|----------------|----------|----------|-------|-------|-------|"
        "----------------------------|"
    )
    big = scale_index(lib)
    for learner in FEEDBACK_LEARNERS:
        seconds = round_time(big, learner)
        for group, keys in (("seen", vocab.query_seen), ("held-out", vocab.query_heldout)):
            p = simulate(lib, truth, list(keys), learner).mean(0)
            print(
                f"| {learner:<14} | {group:<8} | {p[0]:8.3f} | {p[1]:.3f} | {p[2]:.3f} | "
                f"{p[3]:.3f} | {seconds:24.2f} s |",
                flush=True,
            )


if __name__ == "__main__":
    main()

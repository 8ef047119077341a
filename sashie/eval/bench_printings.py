"""`sashie bench --printings`: finding the other printings of a picture, measured on a
printings world (world/reprints.py) drawn from a seed, against plain CLIP neighbours.

Each later printing (an impression, a re-cut, a mirror copy, a crop, a coloured copy) asks
`lib.printings` for the other printings of its picture. Per kind:
- recall: the share of those printings whose block's original is among what it returns;
- precision: the share of what it returns that shows the same block;
- `clip_`: the same for the item's nearest neighbours by vector, as many as printings
  returned (at least one), its own page left out.
Each near miss (the same subject by another artist) is looked for from its block's
original: `nearmiss_rejected` is the share not returned. Group purity: the printings each
original returns together with it, the share of them from its block. Speed: items a second
that `lib.printings` verifies (the pictures read from a warm page cache).

The library is first grouped whole (`lib.printings.group()`, what `sashie printings --all`
runs): `all_` figures are those of its sets (recall: the printing is in its original's set;
precision: the share of its set-mates from its block), with the set purity, the items a
second it looked at and the time that would take for 1.14 M items at that rate.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..library import Library
from .world.reprints import KINDS, make_printings_world, read_printings

FULL_COLLECTION = 1_140_000  # items of the seed paper's collection (cut from 450 K pages)


def run_printings_bench(
    workdir: Path,
    *,
    seed: int,
    blocks: int = 60,
    model: str | None = None,
    world: Path | None = None,
    progress: bool = False,
) -> dict:
    """The figures (`printings_*`) of one printings world."""
    world = world or make_printings_world(
        workdir / "printings-world", blocks=blocks, seed=seed, progress=progress
    )
    truth = read_printings(world)
    lib = Library(workdir / "printings-library", create=True, progress=progress)
    lib.add([str(world / "pages")], model=model, regions="whole", metadata=world / "books.csv")
    item_of = {str(Path(row.page).resolve()): row.id for row in lib.items()}
    block_of = {item_of[t["page"]]: t["block"] for t in truth if t["kind"] != "nearmiss"}
    original = {t["block"]: item_of[t["page"]] for t in truth if t["kind"] == "original"}
    index = lib.index()
    started = time.perf_counter()
    grouped = lib.printings.group()
    grouping_seconds = time.perf_counter() - started
    set_of = {item: set(group) for group in lib.printings.groups() for item in group}

    found: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    clip: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    sets: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    asked, started = 0, time.perf_counter()
    for row in truth:
        if row["kind"] not in KINDS:
            continue
        item, block = item_of[row["page"]], row["block"]
        returned = [p.item for p in lib.printings(item)]
        asked += 1
        found[row["kind"]].append(_scores(returned, block, original[block], block_of))
        mates = sorted(set_of.get(item, set()) - {item})
        sets[row["kind"]].append(_scores(mates, block, original[block], block_of))
        nearest, _ = index.search(lib.vectors_of([item])[0], max(1, len(returned)) + 1)
        neighbours = [int(i) for i in nearest if int(i) != item][: max(1, len(returned))]
        clip[row["kind"]].append(_scores(neighbours, block, original[block], block_of))
    seconds = time.perf_counter() - started

    groups = {block: [p.item for p in lib.printings(item)] for block, item in original.items()}
    purity = [
        np.mean([block_of.get(i) == block for i in group]) if group else 1.0
        for block, group in groups.items()
    ]
    rejected = [
        item_of[row["page"]] not in groups[row["block"]]
        for row in truth
        if row["kind"] == "nearmiss"
    ]

    figures: dict = {}
    for kind in KINDS:
        tables = (("printings_", found), ("printings_clip_", clip), ("printings_all_", sets))
        for prefix, table in tables:
            pairs = table[kind]
            figures[f"{prefix}{kind}_precision"] = (
                round(float(np.mean([p for p, _ in pairs])), 3) if pairs else None
            )
            figures[f"{prefix}{kind}_recall"] = (
                round(float(np.mean([r for _, r in pairs])), 3) if pairs else None
            )
        figures[f"printings_{kind}_queries"] = len(found[kind])
    figures["printings_nearmiss_rejected"] = (
        round(float(np.mean(rejected)), 3) if rejected else None
    )
    figures["printings_nearmiss_queries"] = len(rejected)
    figures["printings_group_purity"] = round(float(np.mean(purity)), 3) if purity else None
    figures["printings_items_per_second"] = round(asked / seconds, 2) if seconds else None
    set_purity = [
        np.mean([block_of.get(i) == block_of.get(group[0]) for i in group])
        for group in lib.printings.groups()
        if block_of.get(group[0]) is not None
    ]
    figures["printings_all_purity"] = round(float(np.mean(set_purity)), 3) if set_purity else None
    figures["printings_all_sets"] = grouped.groups
    figures["printings_all_items_per_second"] = round(grouped.looked / grouping_seconds, 2)
    figures["printings_all_projected_hours"] = round(
        FULL_COLLECTION / figures["printings_all_items_per_second"] / 3600, 1
    )
    figures["printings_items"] = len(item_of)
    return figures


def _scores(returned: list[int], block: int, original: int, block_of: dict) -> tuple[float, float]:
    """(precision, recall) of one query: the share of what it returned from its block, and
    whether its block's original was among it."""
    precision = float(np.mean([block_of.get(i) == block for i in returned])) if returned else 1.0
    return precision, float(original in returned)


def format_table(figures: dict) -> str:
    """The figures as a Markdown table, kind by kind."""
    lines = [
        "| printing | queries | precision | recall | sets (--all): precision | recall "
        "| CLIP neighbours: precision | recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        cells = [figures[f"printings_{kind}_queries"]]
        for prefix in ("printings_", "printings_all_", "printings_clip_"):
            cells += [figures[f"{prefix}{kind}_{name}"] for name in ("precision", "recall")]
        lines.append("| " + " | ".join([kind, *map(str, cells)]) + " |")
    lines.append(
        f"\nnear misses rejected: {figures['printings_nearmiss_rejected']} "
        f"({figures['printings_nearmiss_queries']}); group purity "
        f"{figures['printings_group_purity']}; {figures['printings_items_per_second']} items/s "
        f"verified ({figures['printings_items']} items)\n"
        f"--all: {figures['printings_all_sets']} sets, purity {figures['printings_all_purity']}; "
        f"{figures['printings_all_items_per_second']} items/s, so "
        f"{figures['printings_all_projected_hours']} h for {FULL_COLLECTION:,} items"
    )
    return "\n".join(lines)


def bench(
    *,
    seed: int,
    blocks: int = 60,
    model: str | None = None,
    keep: str | None = None,
    progress: bool = False,
) -> dict:
    """The printings figures of a world drawn from `seed`, in `keep` or a temporary folder."""

    def run(workdir: Path) -> dict:
        return run_printings_bench(
            workdir, seed=seed, blocks=blocks, model=model, progress=progress
        )

    if keep:
        return run(Path(keep))
    with tempfile.TemporaryDirectory(prefix="sashie-printings-") as tmp:
        return run(Path(tmp))

"""sashie's CUDA code paths, timed and checked against the CPU, on an evaluation world.

For each device (default: cuda then cpu when CUDA is present, else cpu) a library is made in a
temporary folder and, through the `Library` verbs alone:
1. the world's pages are indexed (`Library.add(..., device=dev)`, the default regions): pages/s
   and items/s, the encoder's load apart, and the peak GPU memory (torch.cuda);
2. text searches of the most common ground-truth concept names are run and timed (the first,
   which loads the index, apart);
3. items are captioned with their ground-truth concept names (`Library.annotate`; an item's
   concepts as `sashie bench --adapt` judges them, `concepts_of_items`), and
   `lib.versions.adapt(device=dev)` is timed (training, then writing V' = A(V)); the searches are
   timed again with the adapted version.
Then each device's library is compared with the first device's, item matched to item by page
and box: the cosine of their base image vectors and of the query text vectors, and the mean
top-10 overlap of the same text queries, before and after adaptation (fp16 on CUDA against
fp32 on the CPU should agree closely before; after, each device trained its own version).

    python benchmarks/gpu_paths.py --world WORLD [--devices cuda,cpu] [--queries 20]
        [--captions 200] [--model SPEC]

WORLD comes from `sashie world WORLD --pages N --seed S`. Needs no web or filter packages
(fastapi, xgboost, lightgbm) and no fonts: the world is read, not drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from sashie.eval.bench_adapt import concepts_of_items
from sashie.eval.world import read_truth
from sashie.library import Library


def concept_names(world: Path, truth: list[dict]) -> dict[str, str]:
    """Each concept key's English name (world.json), or the key itself."""
    names: dict[str, str] = {}
    meta = world / "world.json"
    if meta.is_file():
        for concept in json.loads(meta.read_text(encoding="utf-8")).get("concepts", []):
            if isinstance(concept, dict) and "key" in concept:
                names[concept["key"]] = concept.get("en") or concept["key"]
    for row in truth:
        for ill in row["illustrations"]:
            for key in ill["concepts"]:
                names.setdefault(key, key)
    return names


def common_concepts(truth: list[dict], n: int) -> list[str]:
    counts = Counter(
        key for row in truth for ill in row["illustrations"] for key in ill["concepts"]
    )
    return [key for key, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: str) -> float | None:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def item_keys(lib: Library) -> dict[int, tuple]:
    """Item id -> (page file, bbox, detector): the same item in another library."""
    return {r.id: (Path(r.page).name, tuple(r.bbox), r.detector) for r in lib.items()}


def run_searches(lib: Library, texts: list[str], keys: dict[int, tuple], k: int = 10):
    """(top-k item keys per query, seconds per query)."""
    tops, seconds = [], []
    for text in texts:
        start = time.perf_counter()
        results = lib.search(text, k=k)
        seconds.append(time.perf_counter() - start)
        tops.append([keys[r.item] for r in results])
    return tops, seconds


def choose_captions(
    lib: Library, truth: list[dict], names: dict[str, str], wanted: int, concepts: int
) -> dict[str, list[int]]:
    """Up to `wanted` items, captioned with one of their concepts' names: the `concepts` most
    common concepts among the items, an equal share each, items taken in (page, box) order."""
    by_item = concepts_of_items(lib, truth)
    keys = item_keys(lib)
    counts = Counter(c for found in by_item.values() for c in found)
    top = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:concepts]]
    share = max(1, wanted // max(1, len(top)))
    used: set[int] = set()
    chosen: dict[str, list[int]] = {}
    for concept in top:
        items = sorted(
            (i for i, found in by_item.items() if concept in found and i not in used),
            key=lambda i: keys[i],
        )[:share]
        used.update(items)
        if items:
            chosen[names[concept]] = items
    return chosen


def overlap_at(a: list[list[tuple]], b: list[list[tuple]], k: int = 10) -> float:
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a, b)]))


def measure(out: dict, world: Path, folder: Path, args, texts, truth, names) -> None:
    """Fill `out` (a failure leaves what was measured before it)."""
    device = out["device"]
    torch.manual_seed(0)
    lib = Library(folder, create=True)
    reset_peak(device)
    start = time.perf_counter()
    encoder = lib.encoder(args.model, device=device)  # loaded once, `add` reuses it
    sync(device)
    out["load_s"] = time.perf_counter() - start
    out["encoder_device"] = f"{encoder.device} {getattr(encoder, 'dtype', '')}"

    start = time.perf_counter()
    report = lib.add([str(world / "pages")], model=args.model, device=device)
    sync(device)
    seconds = time.perf_counter() - start
    counts = lib.counts()
    out.update(
        add_s=seconds,
        pages=counts["pages"],
        items=counts["items"],
        pages_per_s=counts["pages"] / seconds,
        items_per_s=counts["items"] / seconds,
        add_peak_mib=peak_mib(device),
        skipped=counts.get("skipped", 0),
    )
    del report

    keys = item_keys(lib)
    start = time.perf_counter()
    lib.search(texts[0], k=10)  # loads the index
    out["first_search_ms"] = 1000 * (time.perf_counter() - start)
    out["tops_base"], secs = run_searches(lib, texts, keys)
    out["search_ms"] = 1000 * float(np.mean(secs))
    out["search_p50_ms"] = 1000 * float(np.median(secs))
    out["text_vectors"] = lib.query_encoder().encode_texts(texts)
    index = lib.index(version="base")
    out["base_vectors"] = {keys[int(i)]: v for i, v in zip(index.item_ids, index.vectors)}

    chosen = choose_captions(lib, truth, names, args.captions, args.concepts)
    for caption, items in chosen.items():
        lib.annotations.add(items, caption)
    out["pairs"] = lib.counts()["annotations"]
    out["captions"] = len(chosen)

    reset_peak(device)
    start = time.perf_counter()
    adapted = lib.versions.adapt(device=device)
    sync(device)
    out.update(
        adapt_s=time.perf_counter() - start,
        train_s=adapted.trained.seconds,
        apply_s=adapted.apply_seconds,
        adapt_rows=adapted.rows,
        adapt_steps=len(adapted.trained.losses),
        final_loss=adapted.trained.losses[-1] if adapted.trained.losses else float("nan"),
        adapt_peak_mib=peak_mib(device),
        version=adapted.version,
    )
    lib.search(texts[0], k=10)  # loads the adapted version's index and encoder
    out["tops_adapted"], secs = run_searches(lib, texts, keys)
    out["search_adapted_ms"] = 1000 * float(np.mean(secs))
    out["search_adapted_p50_ms"] = 1000 * float(np.median(secs))
    out["query_device"] = getattr(lib.query_encoder(), "device", "?")
    lib.close()


def cosines(a: dict, b: dict) -> np.ndarray:
    common = sorted(set(a) & set(b))
    if not common:
        return np.zeros(0)
    x = np.stack([a[key] for key in common])
    y = np.stack([b[key] for key in common])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return (x * y).sum(1)


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def cell(r: dict, key: str, spec: str = "") -> str:
    return fmt(r.get(key), spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", required=True, type=Path, help="an evaluation world folder")
    parser.add_argument(
        "--devices", help="comma-separated (default: cuda,cpu when CUDA is present, else cpu)"
    )
    parser.add_argument("--queries", type=int, default=20, help="text searches (concept names)")
    parser.add_argument("--captions", type=int, default=200, help="items captioned for adapt")
    parser.add_argument("--concepts", type=int, default=20, help="concepts the captions name")
    parser.add_argument("--model", help="model spec (default: the demo model)")
    parser.add_argument("--keep", type=Path, help="keep the libraries in this folder")
    args = parser.parse_args()

    world = args.world.resolve()
    devices = (
        args.devices.split(",")
        if args.devices
        else (["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"])
    )
    truth = read_truth(world)
    names = concept_names(world, truth)
    texts = [names[key] for key in common_concepts(truth, args.queries)]
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(
        f"torch {torch.__version__}, GPU: {gpu}, CPU threads: {torch.get_num_threads()} "
        f"(of {os.cpu_count()} cores)"
    )
    print(f"world {world}: {len(truth)} pages; {len(texts)} queries: {', '.join(texts)}")

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for n, device in enumerate(devices):
            print(f"\n--- {device} ---", flush=True)
            folder = root / f"lib-{n}-{device.replace(':', '')}"
            r: dict = {"device": device}
            results.append(r)
            try:
                measure(r, world, folder, args, texts, truth, names)
            except Exception:
                r["failed"] = True
                print(f"FAILED on {device}:\n{traceback.format_exc()}", flush=True)
                continue
            print(
                f"encoder on {r['encoder_device']}, queries through {r['query_device']}; "
                f"{r['pairs']} pairs, {r['captions']} captions; version {r['version']}, "
                f"{r['adapt_steps']} steps, final loss {r['final_loss']:.4f}",
                flush=True,
            )

    print("\nindexing (Library.add, default regions) and searching")
    print(
        "| device | load s | pages | items | add s | pages/s | items/s | add peak MiB "
        "| 1st search ms | search ms | p50 ms | adapted search ms | p50 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['device']} | {cell(r, 'load_s', '.2f')} | {cell(r, 'pages')} "
            f"| {cell(r, 'items')} | {cell(r, 'add_s', '.1f')} | {cell(r, 'pages_per_s', '.2f')} "
            f"| {cell(r, 'items_per_s', '.1f')} | {cell(r, 'add_peak_mib', '.0f')} "
            f"| {cell(r, 'first_search_ms', '.1f')} | {cell(r, 'search_ms', '.2f')} "
            f"| {cell(r, 'search_p50_ms', '.2f')} | {cell(r, 'search_adapted_ms', '.2f')} "
            f"| {cell(r, 'search_adapted_p50_ms', '.2f')} |"
        )
    print("\nadapting (Library.adapt)")
    print("| device | pairs | steps | adapt s | train s | apply s | rows | peak MiB | loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['device']} | {cell(r, 'pairs')} | {cell(r, 'adapt_steps')} "
            f"| {cell(r, 'adapt_s', '.1f')} | {cell(r, 'train_s', '.1f')} "
            f"| {cell(r, 'apply_s', '.2f')} | {cell(r, 'adapt_rows')} "
            f"| {cell(r, 'adapt_peak_mib', '.0f')} | {cell(r, 'final_loss', '.4f')} |"
        )
    first = results[0]
    if len(results) > 1 and "base_vectors" in first:
        print(f"\nagreement with {first['device']} (items matched by page, box and detector)")
        print(
            "| device | items matched | image cos mean | image cos min | text cos min "
            "| top-10 overlap base | top-10 overlap adapted |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in results[1:]:
            if "base_vectors" not in r:
                continue
            image = cosines(first["base_vectors"], r["base_vectors"])
            a, b = first["text_vectors"], r["text_vectors"]
            text = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            adapted = (
                overlap_at(first["tops_adapted"], r["tops_adapted"])
                if "tops_adapted" in first and "tops_adapted" in r
                else None
            )
            print(
                f"| {r['device']} | {len(image)} of {len(first['base_vectors'])} "
                f"| {fmt(image.mean() if len(image) else None, '.5f')} "
                f"| {fmt(image.min() if len(image) else None, '.5f')} | {text.min():.5f} "
                f"| {overlap_at(first['tops_base'], r['tops_base']):.3f} | {fmt(adapted, '.3f')} |"
            )
    if any(r.get("failed") for r in results):
        raise SystemExit("failed on: " + ", ".join(r["device"] for r in results if r.get("failed")))


if __name__ == "__main__":
    main()

"""`sashie bench --compose`: a picture changed by words (composed search), measured.

Queries, each a Twemoji reference picture of a concept X (an artist never on the pages, so
the reference is never in the gallery) and words that change it:
- `style`: X + "hand-coloured" / "in ink" (and 彩色の / 墨摺の) -> the illustrations of X in
  that style;
- `with`: X + "with Y" (「Yと」) -> illustrations holding both X and Y, for the (at most
  WITH_PER_CONCEPT) seen concepts Y drawn most often beside X;
- `style_heldout`, `with_heldout`: the same with X among the held-out concepts (names the
  model never read; their pictures are in the library).
A query counts when at least MIN_RELEVANT items answer it. Methods: the picture alone
(`image`), the words alone (`text`), `sum`, `tokens` (the composer's pseudo-words from the
stored-vector space: symmetric) and `light` (from the light query encoder: asymmetric).
`named` is no method but a yardstick: the query the truth would write in the demo model's
own caption form, the concept named ("a hand-coloured illustration of a crane"): what the
text encoder allows when the picture is read perfectly. The light encoder also learns from
QUERY_LIKE Twemoji pictures of concepts no query asks for (pictures like the references, never
the references' own concepts: `train_composer(pictures=...)`).
Metrics: Recall@10 and @50 (the share of relevant items in the top K, out of at most K) and
mAP@50.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..compose.models import count_flops
from ..library import Asked, Library
from ..search.query import DEFAULT_MODIFY_WEIGHT
from .metrics import average_precision_at, recall_at
from .references import reference_pictures
from .truth import GroundTruth
from .world.artists import Artists
from .world.vocab import Vocabulary

TASKS = ("style", "with", "style_heldout", "with_heldout")
METHODS = ("image", "text", "sum", "tokens", "light", "named")
STYLE_WORDS = {"colour": ("hand-coloured", "彩色の"), "ink": ("in ink", "墨摺の")}
STYLE_CAPTIONS = {  # how the demo model's captions say it (world/vocab.py)
    "colour": ("a hand-coloured illustration of {}", "彩色の{}の絵"),
    "ink": ("an ink illustration of {}", "墨摺の{}の絵"),
}
MIN_RELEVANT = 3
WITH_PER_CONCEPT = 2
LATENCY_PICTURES = 12
QUERY_LIKE = 1000


@dataclass
class ComposeQuery:
    task: str
    concept: str  # X, the reference picture's concept
    change: str
    relevant: np.ndarray  # over the index's rows
    named: str  # the yardstick: the concept and the change in the captions' own words


@dataclass
class ComposeExperiment:
    label: str  # which library: "oracle regions", "layout regions, filter applied"
    queries: dict[str, int] = field(default_factory=dict)  # by task
    figures: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # figures[task][method] = {"r10", "r50", "map50"}
    training: dict = field(default_factory=dict)  # the composer's record
    costs: dict = field(default_factory=dict)


def compose_queries(
    lib: Library, truth: list[dict], vocab: Vocabulary, *, parts: bool
) -> list[ComposeQuery]:
    """The queries that have answers in this library (`parts`: count an item that is part
    of an illustration, as layout regions often are)."""
    index = lib.index()
    rows = {r.id: r for r in lib.items(index.item_ids.tolist())}
    ordered = [rows[i] for i in index.item_ids.tolist()]
    ground = GroundTruth(truth)
    concepts = [ground.concepts(r.page, r.bbox, parts=parts, figures=parts) for r in ordered]
    styles = [ground.styles(r.page, r.bbox, parts=parts) for r in ordered]
    excluded = lib.filter.excluded_rows()
    searchable = np.ones(len(ordered), bool) if excluded is None else ~excluded
    by_key = vocab.by_key
    queries: list[ComposeQuery] = []
    for suffix, keys in (("", vocab.query_seen), ("_heldout", vocab.query_heldout)):
        for x in keys:
            has_x = np.array([x in c for c in concepts]) & searchable
            for style, words in STYLE_WORDS.items():
                relevant = has_x & np.array([style in s for s in styles])
                if relevant.sum() >= MIN_RELEVANT:
                    names = (by_key[x].en, by_key[x].ja)
                    queries += [
                        ComposeQuery(f"style{suffix}", x, w, relevant, caption.format(name))
                        for w, caption, name in zip(words, STYLE_CAPTIONS[style], names)
                    ]
            beside = Counter(
                y
                for i in np.nonzero(has_x)[0]
                for y in concepts[i]
                if y != x and y not in vocab.heldout
            )
            for y, count in beside.most_common(WITH_PER_CONCEPT):
                if count < MIN_RELEVANT:
                    break
                relevant = has_x & np.array([y in c for c in concepts])
                both = (
                    f"an illustration of {by_key[x].en} and {by_key[y].en}",
                    f"{by_key[y].ja}と{by_key[x].ja}の絵",
                )
                for change, truth_words in zip((f"with {by_key[y].en}", f"{by_key[y].ja}と"), both):
                    queries.append(ComposeQuery(f"with{suffix}", x, change, relevant, truth_words))
    return queries


def query_like_pictures(vocab: Vocabulary, count: int = QUERY_LIKE) -> list[Image.Image]:
    """Twemoji pictures, made as the references are, of concepts no query asks for."""
    artists = Artists()
    asked = set(vocab.query)
    others = [c for c in vocab.concepts if c.key not in asked][:count]
    return [reference_pictures(artists, c, 1, seed=10_000 + i)[0] for i, c in enumerate(others)]


def reference_of(vocab: Vocabulary, keys: set[str]) -> dict[str, Image.Image]:
    artists = Artists()
    return {k: reference_pictures(artists, vocab.by_key[k], 1, seed=0)[0] for k in sorted(keys)}


def measure(
    lib: Library,
    queries: list[ComposeQuery],
    references: dict[str, Image.Image],
    *,
    methods: tuple[str, ...] = METHODS,
    weight: float = DEFAULT_MODIFY_WEIGHT,
) -> dict[str, dict[str, dict[str, float]]]:
    """Recall@10, Recall@50 and mAP@50 of each method on each task (means over queries)."""
    index = lib.index()
    excluded = lib.filter.excluded_rows()
    scored: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    alone = {
        k: lib.query(Asked(images=[p])).vector for k, p in references.items() if "image" in methods
    }
    for q in queries:
        picture = references[q.concept]
        for method in methods:
            if method == "image":
                vector = alone[q.concept]
            elif method == "text":
                vector = lib.query(q.change).vector
            elif method == "named":
                vector = lib.query(q.named).vector
            else:
                asked = Asked(
                    images=[picture], modify=q.change, modify_method=method, modify_weight=weight
                )
                vector = lib.query(asked).vector
            scores = index.vectors @ vector
            if excluded is not None:
                scores[excluded] = -np.inf
            scored.setdefault(q.task, {}).setdefault(method, []).append(
                (
                    recall_at(scores, q.relevant, 10),
                    recall_at(scores, q.relevant, 50),
                    average_precision_at(scores, q.relevant, 50),
                )
            )
    return {
        task: {
            method: dict(zip(("r10", "r50", "map50"), np.mean(values, 0).round(4).tolist()))
            for method, values in by_method.items()
        }
        for task, by_method in scored.items()
    }


def query_costs(lib: Library, pictures: list[Image.Image], change: str) -> dict:
    """What a query picture costs the gallery model's image tower and the light encoder
    (parameters, FLOPs, CPU milliseconds per picture, preprocessing included), and what a
    whole search costs: picture alone, composed by sum, tokens and light. Timed with one
    torch thread, as `sashie serve` runs (sashie/app/server.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _query_costs(lib, pictures, change)
    finally:
        torch.set_num_threads(threads)


def _query_costs(lib: Library, pictures: list[Image.Image], change: str) -> dict:
    encoder = lib.query_encoder()
    composer = lib.composer.get()
    inner: Any = getattr(encoder, "inner", encoder)  # a torch backend: its model and towers
    model = inner.model
    tower = [
        p.numel()
        for name, p in model.named_parameters()
        if name.startswith(("vision_model", "visual_projection", "visual."))
    ]
    example = torch.from_numpy(np.stack([encoder.preprocess(pictures[0])]))
    costs: dict = {
        "gallery_parameters": int(sum(tower)),
        "gallery_flops": count_flops(lambda x: encoder.encode_pixels(x.numpy()), example),
        "gallery_ms": _median_ms(lambda p: encoder.encode_images([p]), pictures),
    }
    if composer is not None and composer.light is not None:
        light = composer.light
        costs.update(
            light_parameters=int(sum(p.numel() for p in light.parameters())),
            light_flops=count_flops(light, torch.zeros(1, 3, light.side, light.side)),
            light_ms=_median_ms(lambda p: composer.light_vectors([p]), pictures),
        )
    methods = ["sum"] + (["tokens"] if composer is not None else [])
    methods += ["light"] if composer is not None and composer.light is not None else []
    costs["search_image_ms"] = _median_ms(lambda p: lib.search(Asked(images=[p]), 50), pictures)
    for method in methods:
        costs[f"search_{method}_ms"] = _median_ms(
            lambda p, m=method: lib.search(Asked(images=[p], modify=change, modify_method=m), 50),
            pictures,
        )
    return costs


def _median_ms(work, pictures: list[Image.Image], repeats: int = 3) -> float:
    work(pictures[0])  # warm
    times = []
    for _ in range(repeats):
        for picture in pictures:
            started = time.perf_counter()
            work(picture)
            times.append(time.perf_counter() - started)
    return round(float(np.median(times)) * 1000, 3)


def run_compose_experiment(
    lib: Library, label: str, truth: list[dict], vocab: Vocabulary, *, parts: bool, train: bool
) -> ComposeExperiment:
    """Train the library's composer (when `train`), then measure every task and method."""
    experiment = ComposeExperiment(label)
    if train:
        lib.composer.train(pictures=query_like_pictures(vocab))
    composer = lib.composer.get()
    if composer is not None:
        experiment.training = composer.record
    queries = compose_queries(lib, truth, vocab, parts=parts)
    experiment.queries = dict(Counter(q.task for q in queries))
    references = reference_of(vocab, {q.concept for q in queries})
    methods = tuple(m for m in METHODS if composer is not None or m not in ("tokens", "light"))
    experiment.figures = measure(lib, queries, references, methods=methods)
    pictures = list(reference_of(vocab, set(vocab.query[:LATENCY_PICTURES])).values())
    experiment.costs = query_costs(lib, pictures, STYLE_WORDS["colour"][0])
    return experiment


def figures(experiment: ComposeExperiment, prefix: str) -> dict[str, float]:
    """The JSON keys: {prefix}_{task}_r10_{method} (and r50, map50)."""
    out: dict[str, float] = {}
    for task, by_method in experiment.figures.items():
        for method, values in by_method.items():
            for metric, value in values.items():
                out[f"{prefix}_{task}_{metric}_{method}"] = value
    for key in ("token_seconds", "light_seconds"):
        if key in experiment.training:
            out[f"{prefix}_train_{key}"] = experiment.training[key]
    out.update({f"{prefix}_cost_{k}": v for k, v in experiment.costs.items()})
    return out


def format_experiment(experiment: ComposeExperiment) -> str:
    lines = [f"composed search, {experiment.label}: R@10 / R@50 / mAP@50 (queries)"]
    methods = [m for m in METHODS if any(m in f for f in experiment.figures.values())]
    lines.append("| task | " + " | ".join(methods) + " | queries |")
    lines.append("|---|" + "---|" * len(methods) + "---|")
    for task in TASKS:
        by_method = experiment.figures.get(task)
        if not by_method:
            continue
        cells = [
            "{r10:.3f} / {r50:.3f} / {map50:.3f}".format(**by_method[m]) if m in by_method else "-"
            for m in methods
        ]
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {experiment.queries[task]} |")
    record, costs = experiment.training, experiment.costs
    if record:
        lines.append(
            f"composer: {record['items']} items, M = {record['settings']['tokens']} token(s), "
            f"token learner {record['token_seconds']} s"
            + (
                f", light encoder {record['light_seconds']} s on {record['light_crops']} crops "
                f"(cosine to the stored vectors of held-out crops {record['light_agreement']})"
                if "light_seconds" in record
                else ""
            )
        )
    if costs:
        lines.append(
            "query picture: gallery image tower "
            f"{costs['gallery_parameters']:,} parameters, "
            f"{costs['gallery_flops'] / 1e6:.1f} MFLOPs, {costs['gallery_ms']} ms"
            + (
                f"; light encoder {costs['light_parameters']:,} parameters, "
                f"{costs['light_flops'] / 1e6:.1f} MFLOPs, {costs['light_ms']} ms"
                if "light_ms" in costs
                else ""
            )
        )
        searches = ", ".join(
            f"{k[len('search_') : -len('_ms')]} {v} ms"
            for k, v in costs.items()
            if k.startswith("search_")
        )
        lines.append(f"whole search (CPU, one torch thread, k = 50, median): {searches}")
    return "\n".join(lines)

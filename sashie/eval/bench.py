"""`sashie bench`: search quality measured on a fresh evaluation world.

Generates a world from a seed the model never trained on, indexes it (whole pages plus the
ground truth's illustration and text-block boxes as "oracle regions", so that the figures
measure the model rather than region detection), and scores text, image, multi-image and
zero-shot queries against the ground truth. An item is relevant to a concept when it
overlaps (IoU >= 0.5) an illustration of its page whose ground truth contains the concept
(truth.py).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..library import Library
from ..search.ranking import VectorIndex, cv_dimensions, random_dimensions, top_k
from . import bench_adapt, bench_classify, bench_compose, bench_image_tuning, bench_paraphrase
from .metrics import average_precision, precision_at
from .references import REFERENCES, reference_pictures
from .truth import ORACLE_ILLUSTRATION, ORACLE_TEXT, OracleRegions, item_concepts
from .world import make_world, read_truth, world_meta
from .world.artists import Artists
from .world.vocab import Vocabulary, vocabulary

PAPER_DIMS = (64, 128, 192, 256)  # the seed paper's d, for D = 512
RANDOM_SEEDS = 10


@dataclass
class BenchResult:
    figures: dict[str, Any] = field(default_factory=dict)  # numbers, and the model's id
    counts: dict[str, int] = field(default_factory=dict)  # queries behind each figure
    multi: list[dict] = field(default_factory=list)  # the Fig. 2 rows
    adapt: list = field(default_factory=list)  # AdaptExperiment of each library (--adapt)
    compose: list = field(default_factory=list)  # ComposeExperiment of each library (--compose)
    classify: list = field(default_factory=list)  # the ClassifyExperiment (--classify)
    paraphrase: list = field(default_factory=list)  # the ParaphraseExperiment (--paraphrase)
    image_tuning: list = field(default_factory=list)  # ImageTuningExperiment (--image-tuning)

    def add(self, name: str, values: list[float]) -> None:
        self.figures[name] = round(float(np.mean(values)) if values else 0.0, 4)
        self.counts[name] = len(values)


def run_bench(
    *,
    pages: int,
    seed: int,
    model: str | None,
    workdir: Path,
    progress: bool = False,
    adapt: bool = False,
    compose: bool = False,
    classify: bool = False,
    paraphrase: bool = False,
    image_tuning: bool = False,
    world: Path | None = None,
) -> BenchResult:
    started = time.time()
    if world is None:
        world = make_world(workdir / "world", pages=pages, seed=seed, progress=progress)
    truth = read_truth(world)
    lib = Library(workdir / "library", create=True, progress=progress)
    lib.add([str(world / "pages")], model=model, regions=["whole", OracleRegions(truth)])
    encoder = lib.encoder()
    index = lib.index()
    rows = {r.id: r for r in lib.items(index.item_ids.tolist())}
    ordered = [rows[i] for i in index.item_ids.tolist()]
    concepts = item_concepts([(r.page, r.bbox) for r in ordered], truth)
    detectors = np.array([r.detector for r in ordered])

    vocab = vocabulary()
    result = BenchResult()
    _text_queries(result, vocab, encoder, index, concepts, detectors)
    _image_queries(result, vocab, encoder, index, concepts)
    _zero_shot(result, vocab, encoder, index, concepts, detectors)
    _wordings(result, vocab, encoder, index, concepts, workdir)
    if classify:
        experiment = bench_classify.run_classify_experiment(
            encoder, index.vectors, concepts, detectors, vocab, seed=seed
        )
        crops = np.isin(detectors, [ORACLE_ILLUSTRATION, ORACLE_TEXT])
        experiment.open_set, experiment.open_set_items = bench_classify.run_open_set(
            lib, concepts, crops, vocab
        )
        result.classify.append(experiment)
        result.figures.update(bench_classify.figures(experiment))
    both = (result, lib, concepts, detectors, world, truth, model, workdir, seed, progress)
    if paraphrase:
        _on_both_region_kinds(
            bench_paraphrase.run_paraphrase_experiment,
            bench_paraphrase.figures,
            result.paraphrase,
            "para",
            *both,
        )
    if image_tuning:
        _on_both_region_kinds(
            bench_image_tuning.run_image_tuning_experiment,
            bench_image_tuning.figures,
            result.image_tuning,
            "imgtune",
            *both,
        )
    if compose:
        _composition(result, lib, world, truth, model, workdir, seed, progress)
    if adapt:
        _adaptation(result, lib, world, truth, model, workdir, seed, progress)
    result.figures.update(
        pages=pages, items=len(index), seed=seed, seconds=round(time.time() - started, 1)
    )
    result.figures["model"] = encoder.model_id
    return result


def _on_both_region_kinds(
    run,
    figures,
    out: list,
    prefix: str,
    result,
    oracle_lib,
    concepts,
    detectors,
    world,
    truth,
    model,
    workdir,
    seed,
    progress,
) -> None:
    """An experiment (`run`, its `figures`) on the oracle regions (figures `{prefix}_*`) and
    on layout regions with the filter (`{prefix}_layout_*`); both results join `out`."""
    vocab = vocabulary()
    oracle = run(oracle_lib, concepts, detectors == ORACLE_ILLUSTRATION, vocab, seed=seed)
    out.append(oracle)
    result.figures.update(figures(oracle))
    layout_lib, layout_concepts, kept, label = _layout(world, truth, model, workdir, seed, progress)
    layout = run(layout_lib, layout_concepts, kept, vocab, label=label, seed=seed)
    out.append(layout)
    result.figures.update(figures(layout, f"{prefix}_layout"))
    layout_lib.close()


def _layout(world, truth, model, workdir, seed, progress):
    """The bench's library of layout regions with the filter (built once in `workdir`): the
    library, each index row's concepts, the rows the filter keeps, and its label."""
    layout_lib, label = bench_adapt.layout_library(
        workdir / "layout-library", world, model, seed=seed, progress=progress
    )
    by_item = bench_adapt.concepts_of_items(layout_lib, truth)
    index = layout_lib.index()
    layout_concepts = [by_item.get(i, set()) for i in index.item_ids.tolist()]
    excluded = layout_lib.filter.excluded_rows()
    kept = np.ones(len(index), bool) if excluded is None else ~excluded
    return layout_lib, layout_concepts, kept, label


def _composition(
    result: BenchResult,
    oracle_lib: Library,
    world: Path,
    truth: list[dict],
    model: str | None,
    workdir: Path,
    seed: int,
    progress: bool,
) -> None:
    """Composed search on the oracle regions (figures `compose_*`) and on layout regions with
    the filter (`compose_layout_*`), each library's composer trained first."""
    vocab = vocabulary()
    layout_lib, layout_label = bench_adapt.layout_library(
        workdir / "layout-library", world, model, seed=seed, progress=progress
    )
    runs = (
        (oracle_lib, "oracle regions", "compose", False),
        (layout_lib, layout_label, "compose_layout", True),
    )
    for lib, label, prefix, parts in runs:
        experiment = bench_compose.run_compose_experiment(
            lib, label, truth, vocab, parts=parts, train=True
        )
        result.compose.append(experiment)
        result.figures.update(bench_compose.figures(experiment, prefix))
    layout_lib.close()


def _adaptation(
    result: BenchResult,
    oracle_lib: Library,
    world: Path,
    truth: list[dict],
    model: str | None,
    workdir: Path,
    seed: int,
    progress: bool,
) -> None:
    """The adaptation experiments: held-out concepts on layout regions + filter (the figures
    `adapt_*`) and on this bench's oracle regions (`adapt_oracle_*`); new words for seen
    concepts on the oracle regions (`adapt_newwords_*`)."""
    import shutil

    vocab = vocabulary()
    oracle_lib.close()  # copied whole (SQLite checkpointed) before anything is annotated
    shutil.copytree(
        oracle_lib.path, workdir / "new-words-library", ignore=shutil.ignore_patterns("lock")
    )
    layout_lib, layout_label = bench_adapt.layout_library(
        workdir / "layout-library", world, model, seed=seed, progress=progress
    )
    runs = (
        (layout_lib, layout_label, "adapt", False),
        (
            Library(oracle_lib.path, progress=progress),
            "oracle regions, no filter",
            "adapt_oracle",
            False,
        ),
        (
            Library(workdir / "new-words-library", progress=progress),
            "oracle regions, no filter",
            "adapt_newwords",
            True,
        ),
    )
    for lib, label, prefix, new_words in runs:
        experiment = bench_adapt.run_adapt_experiment(
            lib,
            label,
            bench_adapt.concepts_of_items(lib, truth),
            vocab,
            seed=seed,
            new_words=new_words,
        )
        result.adapt.append(experiment)
        result.figures.update(bench_adapt.figures(experiment, prefix))
        lib.close()


def _relevant(concepts: list[set[str]], key: str) -> np.ndarray:
    return np.array([key in c for c in concepts])


def _text_queries(result, vocab: Vocabulary, encoder, index: VectorIndex, concepts, detectors):
    by_key = vocab.by_key
    for group, keys in (("seen", vocab.query_seen), ("heldout", vocab.query_heldout)):
        for language in ("en", "ja"):
            texts = [
                f"an illustration of {by_key[k].en}"
                if language == "en"
                else f"{by_key[k].ja}の挿絵"
                for k in keys
            ]
            vectors = encoder.encode_texts(texts)
            p10, p100, ap, text_share, chance = [], [], [], [], []
            for key, vector in zip(keys, vectors):
                scores = index.vectors @ vector
                relevant = _relevant(concepts, key)
                chance.append(float(relevant.mean()))
                p10.append(precision_at(scores, relevant, 10))
                p100.append(precision_at(scores, relevant, 100))
                ap.append(average_precision(scores, relevant))
                text_share.append(float((detectors[top_k(scores, 100)] == ORACLE_TEXT).mean()))
            result.add(f"text_p10_{language}_{group}", p10)
            result.add(f"text_p100_{language}_{group}", p100)
            result.add(f"text_map_{language}_{group}", ap)
            if language == "en":  # what a random ranking scores: the share of relevant items
                result.add(f"chance_precision_{group}", chance)
            if group == "seen" and language == "en":
                result.add("text_crop_share_top100", text_share)


def _image_queries(result, vocab: Vocabulary, encoder, index: VectorIndex, concepts):
    artists = Artists()
    by_key = vocab.by_key
    hits, p10 = [], []
    for key in vocab.query:
        picture = reference_pictures(artists, by_key[key], 1, seed=0)[0]
        scores = index.vectors @ encoder.encode_images([picture])[0]
        relevant = _relevant(concepts, key)
        best = relevant[top_k(scores, 10)]
        hits.append(float(best.any()))
        p10.append(float(best.mean()))
    result.add("image_r10_cross_artist", hits)
    result.add("image_p10_cross_artist", p10)

    dim = index.dim
    dims_list = sorted({max(1, round(d * dim / 512)) for d in PAPER_DIMS})
    themes = vocab.query_seen
    references = {
        k: encoder.encode_images(reference_pictures(artists, by_key[k], REFERENCES, seed=i + 1))
        for i, k in enumerate(themes)
    }
    relevant_to = {k: _relevant(concepts, k) for k in themes}

    def p100(key, dims):
        return precision_at(index.scores(references[key].mean(0), dims), relevant_to[key], 100)

    all_dims = [p100(k, None) for k in themes]
    result.add("multi_p100_all", all_dims)
    for d in dims_list:
        cv = [p100(k, cv_dimensions(references[k], d)) for k in themes]
        per_seed = [
            np.mean([p100(k, random_dimensions(dim, d, s)) for k in themes])
            for s in range(RANDOM_SEEDS)
        ]
        result.add(f"multi_p100_cv_d{d}", cv)
        result.figures[f"multi_p100_random_mean_d{d}"] = round(float(np.mean(per_seed)), 4)
        result.counts[f"multi_p100_random_mean_d{d}"] = len(themes) * RANDOM_SEEDS
        result.multi.append(
            {
                "d": d,
                "cv": float(np.mean(cv)),
                "random_mean": float(np.mean(per_seed)),
                "random_min": float(np.min(per_seed)),
                "random_max": float(np.max(per_seed)),
                "all": float(np.mean(all_dims)),
            }
        )


def _zero_shot(result, vocab: Vocabulary, encoder, index: VectorIndex, concepts, detectors):
    for heldout, name in ((False, "zeroshot_acc_seen"), (True, "zeroshot_acc_heldout")):
        hits = bench_classify.zero_shot_hits(
            index.vectors, encoder, vocab, concepts, detectors == ORACLE_ILLUSTRATION, heldout
        )
        result.add(name, hits)


def _wordings(result, vocab: Vocabulary, encoder, index: VectorIndex, concepts, workdir) -> None:
    """Other wordings of the 36 query concepts, no tuning: `wording_*` the paraphrase bench's
    held-out set (CLDR keywords and templates of the held-out half), `dictionary_*` the
    wordings no training read (WordNet glosses, JMdict's held-out entries; absent when
    WordNet or JMdict is not installed), `handwritten_*` paraphrases written by hand (their
    AO@10 and JS@10 against the canonical query). AO@10 and JS@10 between wordings, P@10."""
    keys = list(vocab.query)
    sets = {"wording": bench_paraphrase.held_out_set(vocab, keys)}
    if (kept := bench_paraphrase.kept_back_wordings(vocab, keys, workdir / "lexicon")) is not None:
        sets["dictionary"] = kept
    sets["handwritten"] = bench_paraphrase.handwritten_wordings(keys)
    relevant = {k: _relevant(concepts, k) for k in keys}
    for name, wordings in sets.items():
        values = bench_paraphrase.wording_values(
            index.vectors,
            encoder,
            keys,
            wordings,
            relevant,
            vocab,
            against_canonical=name == "handwritten",
        )
        for metric in ("ao10", "js10", "p10"):
            for lang in ("en", "ja"):
                result.add(f"{name}_{metric}_{lang}", values[f"{metric}_{lang}"])


def format_table(result: BenchResult) -> str:
    f, n = result.figures, result.counts
    lines = [
        f"sashie bench: {f['pages']} pages, {f['items']} items, seed {f['seed']}, "
        f"model {f['model']}, {f['seconds']} s",
        "",
        f"| {'metric':<34} | {'value':>6} | {'queries':>7} |",
        f"|{'-' * 36}|{'-' * 8}|{'-' * 9}|",
    ]
    for name, value in f.items():
        if name in n and not name.startswith("multi_"):
            lines.append(f"| {name:<34} | {value:6.3f} | {n[name]:>7} |")
    lines += [
        "",
        "multi-image query, Precision@100 over "
        f"{n.get('multi_p100_all', 0)} themes, L = {REFERENCES} Twemoji references each "
        f"(random: {RANDOM_SEEDS} seeds)",
        f"| {'d':>4} | {'CV':>6} | {'random mean':>11} | {'random min':>10} | "
        f"{'random max':>10} | {'all dims':>8} |",
        f"|{'-' * 6}|{'-' * 8}|{'-' * 13}|{'-' * 12}|{'-' * 12}|{'-' * 10}|",
    ]
    for row in result.multi:
        lines.append(
            f"| {row['d']:>4} | {row['cv']:6.3f} | {row['random_mean']:11.3f} | "
            f"{row['random_min']:10.3f} | {row['random_max']:10.3f} | {row['all']:8.3f} |"
        )
    for labelled in result.classify:
        lines += ["", bench_classify.format_experiment(labelled)]
    for worded in result.paraphrase:
        lines += ["", bench_paraphrase.format_experiment(worded)]
    for tuned in result.image_tuning:
        lines += ["", bench_image_tuning.format_experiment(tuned)]
    for composed in result.compose:
        lines += ["", bench_compose.format_experiment(composed)]
    if result.adapt:
        for experiment in result.adapt:
            lines += ["", bench_adapt.format_experiment(experiment)]
    return "\n".join(lines)


def bench(
    *,
    quick: bool = False,
    pages: int | None = None,
    seed: int = 1000,
    model: str | None = None,
    keep: str | None = None,
    progress: bool = False,
    adapt: bool = False,
    compose: bool = False,
    classify: bool = False,
    paraphrase: bool = False,
    image_tuning: bool = False,
    world: str | None = None,
) -> BenchResult:
    """Measure on a world drawn for the purpose, or on an existing one (`sashie world`),
    whose page count and seed then come from its world.json."""
    pages = pages or (300 if quick else 2000)
    if world is not None:
        meta = world_meta(world)
        pages, seed = meta["pages"], meta["seed"]

    def run(workdir: Path) -> BenchResult:
        return run_bench(
            pages=pages,
            seed=seed,
            model=model,
            workdir=workdir,
            progress=progress,
            adapt=adapt,
            compose=compose,
            classify=classify,
            paraphrase=paraphrase,
            image_tuning=image_tuning,
            world=Path(world) if world is not None else None,
        )

    if keep:
        return run(Path(keep))
    with tempfile.TemporaryDirectory(prefix="sashie-bench-") as tmp:
        return run(Path(tmp))


def as_json(result: BenchResult) -> str:
    return json.dumps(result.figures, ensure_ascii=False)

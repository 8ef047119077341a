"""`sashie bench --adapt`: the seed paper's §6.3 (几帳 found after fine-tuning), measured.

For each held-out query concept (names the demo model never read), a simulated annotator
works as the paper's researchers did: a multi-image query from Twemoji references, then
rounds of relevance feedback, looking at SHOWN new results a round (at most ROUNDS) and
marking each right or wrong by the ground truth. While nothing is right yet, each round asks
the next way a person would: the references, the word (English, then Japanese), the word with
the references. The first ANNOTATE_PER_CONCEPT right ones (fewer when that would make more
than MAX_PAIRS in all) are captioned (the English name or the Japanese one, in turn). The
library is then adapted (`lib.versions.adapt`) and text queries are measured before and after, for
the held-out and the seen query concepts, counting only items outside the training pairs.
Ablations: without the remembered examples (memory.py), adapter only, text encoder only, both
with R = 0.2 (the default), 0.5, 0.8, and the paper's recipe as written.

`new_words` runs the same with pictures the model knows and words it does not: half the seen
query concepts are captioned with invented words (romaji and katakana), the other half must
not be lost. That separates the two halves of the problem: does the image encoder tell the
pictures apart, and does the recipe teach a word.

A reference row says how far the stored image vectors themselves separate the taught
concepts: every remaining item scored by its mean similarity to its 3 nearest annotated
examples, no caption and no text encoder involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..adapt.settings import DEFAULTS, AdaptSettings
from ..encoders import normalize_rows
from ..errors import SashieError
from ..library import BASE, Library
from ..search.ranking import VectorIndex
from .metrics import precision_at
from .references import REFERENCES, reference_pictures
from .truth import ground_truth_marks, item_concepts
from .world.artists import Artists
from .world.vocab import Vocabulary

ANNOTATE_PER_CONCEPT = 30
MAX_PAIRS = 300  # in all: fewer per concept when there are more than ten concepts
SHOWN = 20  # new results the annotator looks at in a round
ROUNDS = 8
NEAREST = 3

# The seed paper's settings as written, without sashie's additions: 3 epochs whatever the
# number of steps, the paper's learning rates, negatives from the batch, no anchors.
PAPER_RECIPE = {
    "lr": 5e-5,
    "adapter_lr": 1e-3,
    "min_steps": 0,
    "negatives": 64,
    "anchor_weight": 0.0,
    "example_weight": 0.0,
}
VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (  # (name, settings relative to defaults)
    ("adapter + text, R 0.2", {}),
    ("without examples", {"example_weight": 0.0}),
    ("adapter only, R 0.2", {"train_text": False}),
    ("text only", {"train_adapter": False}),
    ("adapter + text, R 0.5", {"ratio": 0.5}),
    ("adapter + text, R 0.8", {"ratio": 0.8}),
    ("the paper's recipe", PAPER_RECIPE),
)
FILTER_MARKS = 1000
SYLLABLES = [
    ("ka", "カ"),
    ("ri", "リ"),
    ("mo", "モ"),
    ("zu", "ズ"),
    ("te", "テ"),
    ("shi", "シ"),
    ("no", "ノ"),
    ("ba", "バ"),
    ("ge", "ゲ"),
    ("ro", "ロ"),
    ("mi", "ミ"),
    ("ya", "ヤ"),
    ("ku", "ク"),
    ("ho", "ホ"),
    ("ne", "ネ"),
    ("sa", "サ"),
]


@dataclass
class AdaptExperiment:
    label: str  # which library: its regions
    items: int  # items searched (kept by the filter)
    concepts: int
    pairs: int
    judged: int  # results the annotator looked at
    captioned: int  # concepts the annotator found at least one item of
    taught: str = "held-out"  # what the captions teach: held-out concepts' names, new words
    rows: list[dict] = field(default_factory=list)  # "before", then one per variant
    reference_p10: float = 0.0

    def figure(self, name: str, group: str) -> float:
        row = next(r for r in self.rows if r["name"] == name)
        return round((row[f"{group}_p10_en"] + row[f"{group}_p10_ja"]) / 2, 4)


def annotate(
    lib: Library,
    relevant: dict[str, set[int]],
    names: dict[str, tuple[str, str]],
    vocab: Vocabulary,
    *,
    seed: int,
) -> tuple[dict[str, list[int]], int]:
    """Find and caption up to ANNOTATE_PER_CONCEPT items per concept, as a person would with
    the search: (found item ids by concept, results looked at). `names` are the words the
    annotator knows each concept by (English, Japanese)."""
    artists = Artists()
    encoder = lib.query_encoder()
    wanted = min(ANNOTATE_PER_CONCEPT, MAX_PAIRS // max(1, len(relevant)))
    found_by_key, judged_total = {}, 0
    for i, key in enumerate(relevant):
        pictures = reference_pictures(artists, vocab.by_key[key], REFERENCES, seed=seed + i)
        references = encoder.encode_images(pictures).mean(0)
        words = encoder.encode_texts(list(names[key]))
        # while nothing is right, the next way to ask: the references, the word (English,
        # Japanese), the word with the references (as `build_query` sums them)
        starts = [normalize_rows(v) for v in (references, *words, *(references + words))]
        judged: dict[int, bool] = {}
        for round_ in range(ROUNDS):
            right = [item for item, ok in judged.items() if ok]
            wrong = [item for item, ok in judged.items() if not ok]
            k = len(judged) + SHOWN
            results = (
                lib.feedback(starts[0], k, relevant=right, irrelevant=wrong)
                if right
                else lib.search(starts[round_ % len(starts)], k)
            )
            fresh = [r.item for r in results if r.item not in judged][:SHOWN]
            for item in fresh:
                judged[item] = item in relevant[key]
            if sum(judged.values()) >= wanted or not fresh:
                break
        found_by_key[key] = [item for item, ok in judged.items() if ok][:wanted]
        judged_total += len(judged)
    return found_by_key, judged_total


def version_names(lib: Library) -> set[str]:
    """The names of the active model's versions."""
    return {v["name"] for v in lib.versions.list()["versions"]}


def back_to_base(lib: Library, keep: set[str]) -> None:
    """Make the base active again and remove the versions an experiment made (all but
    `keep`, those there before)."""
    lib.versions.use(BASE)
    for version in version_names(lib) - keep:
        lib.versions.remove(version)


def kept_outside(lib: Library, item_ids: np.ndarray, skip: set[int]) -> np.ndarray:
    """Which rows of the library's index the filter kept and are not in `skip`."""
    allowed = ~np.isin(item_ids, np.fromiter(skip, np.int64, len(skip)))
    excluded = lib.filter.excluded_rows()
    return allowed if excluded is None else allowed & ~excluded


def measure(
    lib: Library,
    relevant: dict[str, set[int]],
    groups: dict[str, dict[str, tuple[str, str]]],
    skip: set[int],
) -> dict:
    """Text -> illustration P@10 and P@100 per group and language with the active version,
    over the kept items outside `skip`; `groups` name each concept (English, Japanese)."""
    index = lib.index()
    allowed = kept_outside(lib, index.item_ids, skip)
    vectors, item_ids = index.vectors[allowed], index.item_ids[allowed]
    encoder = lib.query_encoder()
    memory = lib.versions.memory()
    search = VectorIndex(vectors, item_ids)
    out = {}
    for group, names in groups.items():
        keys = list(names)
        for language in ("en", "ja"):
            texts = [
                f"an illustration of {names[k][0]}" if language == "en" else f"{names[k][1]}の挿絵"
                for k in keys
            ]
            p10, p100 = [], []
            for key, text_vector in zip(keys, encoder.encode_texts(texts)):
                boost = memory.boost(text_vector) if memory is not None else {}
                scores = search.scores(text_vector, **boost)
                truth = np.isin(item_ids, np.fromiter(relevant[key], np.int64))
                p10.append(precision_at(scores, truth, 10))
                p100.append(precision_at(scores, truth, 100))
            out[f"{group}_p10_{language}"] = float(np.mean(p10))
            out[f"{group}_p100_{language}"] = float(np.mean(p100))
    return out


def nearest_examples_p10(
    lib: Library, relevant: dict[str, set[int]], found: dict[str, list[int]], skip: set[int]
) -> float:
    """P@10 of ranking kept items by similarity to their NEAREST annotated examples."""
    index = lib.index(version=BASE)
    allowed = kept_outside(lib, index.item_ids, skip)
    vectors, item_ids = index.vectors[allowed], index.item_ids[allowed]
    values = []
    for key, items in found.items():
        if not items:
            values.append(0.0)
            continue
        similar = vectors @ lib.vectors_of(items, version=BASE).T
        top = np.sort(similar, axis=1)[:, -min(NEAREST, len(items)) :]
        truth = np.isin(item_ids, np.fromiter(relevant[key], np.int64))
        values.append(precision_at(top.mean(1), truth, 10))
    return float(np.mean(values))


def layout_library(
    folder: Path, world: Path, model: str | None, *, seed: int, progress: bool
) -> tuple[Library, str]:
    """The collection as a user would index it: layout regions, a filter trained on
    FILTER_MARKS ground-truth labels and applied. Returns the library and its description
    (a small world may lack the labels to train a filter on). One made before in `folder`
    (`--keep`, or by the other experiment of this run) is used as it is."""
    lib = Library(folder, create=True, progress=progress)
    if lib.filter.exists:
        return lib, "layout regions, filter applied"
    lib.add([str(world / "pages")], model=model, regions="layout")
    ids, keep = ground_truth_marks(lib, world, FILTER_MARKS, seed)
    lib.filter.mark(ids, keep, source="ground-truth")
    try:
        lib.filter.train(learners=("svm", "mlp"), seed=seed)
    except SashieError as e:
        return lib, f"layout regions, no filter ({e})"
    return lib, "layout regions, filter applied"


def concepts_of_items(lib: Library, truth: list[dict]) -> dict[int, set[str]]:
    """Each item's concepts: those of the illustrations it matches at IoU >= 0.5, and those
    whose figure it shows (a layout region may hold one figure of a scene of four)."""
    rows = lib.items()
    return dict(
        zip(
            [r.id for r in rows],
            item_concepts([(r.page, r.bbox) for r in rows], truth, figures=True),
        )
    )


def invented_words(keys: Sequence[str], seed: int, taken: set[str]) -> dict[str, tuple[str, str]]:
    """A new word for each concept, in romaji and in katakana: a collection's own vocabulary
    that no model has read."""
    rng = np.random.default_rng(seed)
    words: dict[str, tuple[str, str]] = {}
    for key in keys:
        while True:
            syllables = [SYLLABLES[i] for i in rng.integers(len(SYLLABLES), size=3)]
            word = "".join(latin for latin, _ in syllables)
            if word not in taken:
                taken.add(word)
                words[key] = (word, "".join(kana for _, kana in syllables))
                break
    return words


def run_adapt_experiment(
    lib: Library,
    label: str,
    item_concepts: dict[int, set[str]],
    vocab: Vocabulary,
    *,
    seed: int,
    new_words: bool = False,
    settings: AdaptSettings = DEFAULTS,
) -> AdaptExperiment:
    """The whole experiment on one library (its items' ground-truth concepts given).

    The annotator captions the held-out query concepts with their names; with `new_words`,
    half the seen query concepts with invented words instead (pictures the model knows,
    words it does not), the other half being the concepts that must not be lost."""
    names = {c.key: (c.en, c.ja) for c in vocab.concepts}
    if new_words:
        half = len(vocab.query_seen) // 2
        taught = invented_words(
            vocab.query_seen[:half], seed, {n.lower() for c in vocab.concepts for n in (c.en, c.ja)}
        )
        groups = {"heldout": taught, "seen": {k: names[k] for k in vocab.query_seen[half:]}}
    else:
        groups = {
            "heldout": {k: names[k] for k in vocab.query_heldout},
            "seen": {k: names[k] for k in vocab.query_seen},
        }
    relevant = {
        k: {item for item, c in item_concepts.items() if k in c}
        for group in groups.values()
        for k in group
    }
    lib.versions.use(BASE)
    found, judged = annotate(
        lib, {k: relevant[k] for k in groups["heldout"]}, groups["heldout"], vocab, seed=seed
    )
    for key, items in found.items():  # each item captioned in one language, in turn
        for n, item in enumerate(items):
            lib.annotations.add([item], groups["heldout"][key][n % 2])
    skip = {item for items in found.values() for item in items}
    captioned = sum(1 for items in found.values() if items)
    experiment = AdaptExperiment(
        label,
        int(kept_outside(lib, lib.index().item_ids, set()).sum()),
        len(found),
        lib.counts()["annotations"],
        judged,
        captioned,
        taught="new words" if new_words else "held-out",
    )
    experiment.rows.append(
        {"name": "before", "seconds": 0.0, **measure(lib, relevant, groups, skip)}
    )
    for name, change in VARIANTS:
        report = lib.versions.adapt(settings=replace(settings, **change))
        experiment.rows.append(
            {
                "name": name,
                "seconds": round(report.trained.seconds, 1),
                "version": report.version,
                **measure(lib, relevant, groups, skip),
            }
        )
    experiment.reference_p10 = nearest_examples_p10(lib, relevant, found, skip)
    lib.versions.use(experiment.rows[1]["version"])  # the default recipe stays active
    return experiment


def figures(experiment: AdaptExperiment, prefix: str = "adapt") -> dict[str, float]:
    main = VARIANTS[0][0]
    out = {
        f"{prefix}_heldout_p10_before": experiment.figure("before", "heldout"),
        f"{prefix}_heldout_p10_after": experiment.figure(main, "heldout"),
        f"{prefix}_seen_p10_before": experiment.figure("before", "seen"),
        f"{prefix}_seen_p10_after": experiment.figure(main, "seen"),
        f"{prefix}_pairs": experiment.pairs,
        f"{prefix}_concepts_captioned": experiment.captioned,
        f"{prefix}_heldout_nearest_examples_p10": round(experiment.reference_p10, 4),
    }
    for name, _ in VARIANTS[1:]:
        slug = (
            name.replace(" + ", "_")
            .replace(", ", "_")
            .replace(" ", "_")
            .replace(".", "")
            .replace("'", "")
        )
        out[f"{prefix}_{slug}_heldout_p10"] = experiment.figure(name, "heldout")
        out[f"{prefix}_{slug}_seen_p10"] = experiment.figure(name, "seen")
    return out


def format_experiment(experiment: AdaptExperiment) -> str:
    e = experiment
    taught = (
        f"{e.concepts} held-out concepts"
        if e.taught == "held-out"
        else f"new words for {e.concepts} seen concepts"
    )
    lines = [
        f"adaptation ({e.label}): {taught} ({e.captioned} found and captioned), "
        f"{e.pairs} pairs found by image and text queries + feedback ({e.judged} results "
        f"judged), {e.items} items; P@k over items outside the training pairs",
        f"| model                     | {e.taught + ' P@10 en':>17} "
        "| ja    | P@100 en | ja    "
        "| seen P@10 en | ja    | P@100 en | ja    | train s |",
        "|---------------------------|-------------------|-------|----------|-------"
        "|--------------|-------|----------|-------|---------|",
    ]
    for row in e.rows:
        lines.append(
            f"| {row['name']:<25} | {row['heldout_p10_en']:17.3f} | {row['heldout_p10_ja']:5.3f} "
            f"| {row['heldout_p100_en']:8.3f} | {row['heldout_p100_ja']:5.3f} "
            f"| {row['seen_p10_en']:12.3f} | {row['seen_p10_ja']:5.3f} "
            f"| {row['seen_p100_en']:8.3f} | {row['seen_p100_ja']:5.3f} | {row['seconds']:7.1f} |"
        )
    lines.append(
        f"reference, image vectors only: {e.taught} P@10 of the {NEAREST} nearest "
        f"annotated examples = {e.reference_p10:.3f}"
    )
    return "\n".join(lines)

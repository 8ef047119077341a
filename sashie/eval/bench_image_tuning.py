"""`sashie bench --image-tuning`: does an image version (MCIP) find more like a picture
without losing text search?

On the bench's library of oracle regions: a simulated annotator captions half of the seen
query concepts and half of the held-out ones by their English names, a random half (at most
CAPTIONED) of each one's pictures; each caption is a class.
Measured on the items it did not caption:
- image -> image: mAP@100 and R@10 (a relevant item in the top 10) of a single Twemoji
  picture as the query, for the trained concepts and for the query concepts never trained;
- text -> image: P@10 of the canonical queries ("an illustration of X", 「Xの挿絵」), EN and
  JA, seen and held-out; zero-shot accuracy over the seen names.
Rows: the base; ArcMargin alone (classes only); MCIP (+ the multi-caption ArcMargin against
the captions' locked text vectors); MCIP + Re-A (then the text encoder re-aligned). The
versions remember no examples (so text queries show the vectors alone) and are removed
afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..adapt.settings import AdaptSettings
from ..library import BASE, Asked, Library
from .bench_adapt import back_to_base, version_names
from .bench_classify import zero_shot_hits
from .bench_paraphrase import canonical
from .references import reference_pictures
from .world.artists import Artists
from .world.vocab import Vocabulary

ROWS: dict[str, dict] = {
    "base": {},
    "arcmargin": {"caption_weight": 0.0},
    "mcip": {},
    "mcip_rea": {"realign": True},
}
SETTINGS = AdaptSettings(target="images", train_text=False, example_weight=0.0)
LANGUAGES = ("en", "ja")
CAPTIONED = 15  # pictures of a trained concept captioned, at most


@dataclass
class ImageTuningExperiment:
    label: str = "oracle regions"
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    captioned: int = 0  # (item, caption) pairs
    classes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def average_precision_at(ranked_relevant: np.ndarray, total: int, k: int = 100) -> float:
    """AP@k of a ranked 0/1 list, over min(total, k) relevant items."""
    hits = np.asarray(ranked_relevant[:k], float)
    if total == 0:
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / min(total, k))


def run_image_tuning_experiment(
    lib: Library,
    concepts: list[set[str]],
    eligible: np.ndarray,
    vocab: Vocabulary,
    *,
    label: str = "oracle regions",
    seed: int = 0,
    settings: AdaptSettings = SETTINGS,
) -> ImageTuningExperiment:
    """Every row on `lib` (`concepts` of its index rows; `eligible` the rows that count)."""
    out = ImageTuningExperiment(label=label)
    lib.versions.use(BASE)
    item_ids = lib.index().item_ids
    eligible = np.asarray(eligible, bool)
    trained = [*vocab.query_seen[::2], *vocab.query_heldout[::2]]
    untrained = [*vocab.query_seen[1::2], *vocab.query_heldout[1::2]]
    relevant = {
        k: {int(item_ids[r]) for r in np.flatnonzero(eligible) if k in concepts[r]}
        for k in vocab.query
    }
    names = {c.key: (c.en, c.ja) for c in vocab.concepts}
    before = version_names(lib)
    annotations_before = lib.counts()["annotations"]
    # the annotator captions a random half (at most CAPTIONED) of each trained concept's
    # pictures: what is left to find is then like what was found (an annotator who captions
    # only its searches' top results leaves the hardest pictures to measure on)
    rng = np.random.default_rng(seed)
    found = {
        k: [
            int(i)
            for i in rng.permutation(sorted(relevant[k]))[: min(CAPTIONED, len(relevant[k]) // 2)]
        ]
        for k in trained
    }
    found = {k: items for k, items in found.items() if len(items) >= 2}  # a class needs two
    for key, items in found.items():
        lib.annotations.add(items, names[key][0])
    skip = {i for items in found.values() for i in items}
    out.captioned = lib.counts()["annotations"] - annotations_before
    out.classes = len(found)
    artists = Artists()
    pictures = {k: reference_pictures(artists, vocab.by_key[k], 1, seed=0)[0] for k in vocab.query}
    try:
        # a world too small for two classes is measured on the base alone
        rows = ROWS if len(found) >= 2 else {"base": {}}
        for row, change in rows.items():
            started = time.time()
            if row != "base":
                lib.versions.adapt(settings=replace(settings, seed=seed, **change))
            out.rows[row] = _measure(lib, vocab, relevant, pictures, trained, untrained, skip)
            out.rows[row]["zeroshot_seen"] = _zero_shot(lib, vocab, concepts, eligible)
            out.seconds[row] = round(time.time() - started, 1)
    finally:
        back_to_base(lib, before)
        for key, items in found.items():
            lib.annotations.remove(items, names[key][0])
    return out


def _measure(lib, vocab, relevant, pictures, trained, untrained, skip) -> dict[str, float]:
    depth = 100 + len(skip)
    ap, r10 = {}, {}
    for key in vocab.query:
        targets = relevant[key] - skip
        found = [r.item for r in lib.search(Asked(images=[pictures[key]]), depth)]
        ranked = np.array([item in targets for item in found if item not in skip][:100])
        ap[key] = average_precision_at(ranked, len(targets))
        r10[key] = float(ranked[:10].any())
    figures: dict[str, float] = {}
    for group, keys in (
        ("trained", trained),
        ("untrained", untrained),
        ("seen", vocab.query_seen),
        ("heldout", vocab.query_heldout),
    ):
        figures[f"i2i_map100_{group}"] = float(np.mean([ap[k] for k in keys]))
        figures[f"i2i_r10_{group}"] = float(np.mean([r10[k] for k in keys]))
    for group, keys in (("seen", vocab.query_seen), ("heldout", vocab.query_heldout)):
        for lang in LANGUAGES:
            p10 = []
            for key in keys:
                found = [r.item for r in lib.search(canonical(vocab, key, lang), k=10 + len(skip))]
                top = [item for item in found if item not in skip][:10]
                p10.append(float(np.mean([item in relevant[key] for item in top])))
            figures[f"t2i_p10_{lang}_{group}"] = float(np.mean(p10))
    return {k: round(v, 4) for k, v in figures.items()}


def _zero_shot(lib: Library, vocab: Vocabulary, concepts, eligible) -> float:
    hits = zero_shot_hits(lib.index().vectors, lib.query_encoder(), vocab, concepts, eligible)
    return round(float(np.mean(hits)), 4)


def figures(experiment: ImageTuningExperiment, prefix: str = "imgtune") -> dict[str, float]:
    """The --json keys: imgtune_i2i_map100_<row>, imgtune_i2i_r10_<row>,
    imgtune_t2i_p10_<row> (EN and JA, seen and held-out averaged), and every figure of
    every row as imgtune_<figure>_<row>."""
    out = {}
    for row, v in experiment.rows.items():
        out[f"{prefix}_i2i_map100_{row}"] = round(
            (v["i2i_map100_trained"] + v["i2i_map100_untrained"]) / 2, 4
        )
        out[f"{prefix}_i2i_r10_{row}"] = round(
            (v["i2i_r10_trained"] + v["i2i_r10_untrained"]) / 2, 4
        )
        t2i = [v[f"t2i_p10_{lang}_{g}"] for lang in LANGUAGES for g in ("seen", "heldout")]
        out[f"{prefix}_t2i_p10_{row}"] = round(float(np.mean(t2i)), 4)
        for name, value in v.items():
            out[f"{prefix}_{name}_{row}"] = value
    return out


def format_experiment(e: ImageTuningExperiment) -> str:
    lines = [
        f"image tuning ({e.label}): {e.classes} classes, {e.captioned} items captioned (a random "
        "half of each trained concept's); measured on the other items",
        "| row       | i2i mAP@100 trained | untrained | seen  | held-out | R@10 trained | "
        "untrained | t2i P@10 en seen | ja seen | en held-out | ja held-out | zero-shot |",
        "|-----------|---------------------|-----------|-------|----------|--------------|"
        "-----------|------------------|---------|-------------|-------------|-----------|",
    ]
    for row, v in e.rows.items():
        lines.append(
            f"| {row:<9} | {v['i2i_map100_trained']:19.3f} | {v['i2i_map100_untrained']:9.3f} "
            f"| {v['i2i_map100_seen']:5.3f} | {v['i2i_map100_heldout']:8.3f} "
            f"| {v['i2i_r10_trained']:12.3f} | {v['i2i_r10_untrained']:9.3f} | "
            f"{v['t2i_p10_en_seen']:16.3f} | {v['t2i_p10_ja_seen']:7.3f} | "
            f"{v['t2i_p10_en_heldout']:11.3f} | {v['t2i_p10_ja_heldout']:11.3f} | "
            f"{v['zeroshot_seen']:9.3f} |"
        )
    lines.append("seconds a row: " + ", ".join(f"{k} {s}" for k, s in e.seconds.items()))
    return "\n".join(lines)

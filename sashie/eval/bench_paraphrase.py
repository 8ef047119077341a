"""`sashie bench --paraphrase`: do other wordings of a query find the same pictures?

On the bench's library of oracle regions and on one of layout regions with the filter, for
the 36 query concepts (24 seen, 12 held-out):
- a held-out paraphrase set: each concept's names and its CLDR keywords of the held-out half
  in the held-out half of the templates (paraphrase.py splits both by a fixed rule), at least
  5 wordings a concept and language where its keywords allow;
- AO@10 and JS@10 between the top-10 lists of every pair of wordings of a concept, English
  and Japanese; P@10 and P@100 of those wordings and of the canonical queries ("an
  illustration of X", 「Xの挿絵」); zero-shot accuracy over the seen names.
Rows: the base model; ParaCLIP (all three terms, paraphrases alone: `adapt --paraphrase
--no-teach`); each term alone; x' only (a one-step paraphrase: x'' = x'). Each tuned row is a
model version trained on captions of the seen concepts' illustrations (their EN and JA names,
as a curator's annotations would be) paraphrased by the training half; the versions are
removed afterwards and the base made active again.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from itertools import combinations
from pathlib import Path

import numpy as np

from ..adapt.paraphrase import EN_TEMPLATES, JA_TEMPLATES, Paraphrased, RuleParaphraser, half_of
from ..adapt.settings import AdaptSettings
from ..errors import SashieError
from ..library import BASE, Library
from .bench_adapt import back_to_base, version_names
from .bench_classify import zero_shot_hits
from .lexicon.jmdict import entries, installed_database
from .lexicon.wordnet import read_synsets
from .metrics import precision_at
from .world.labels import world_label_set
from .world.vocab import Vocabulary
from .world.wordings import build_language

PAIRS_PER_CONCEPT = 6  # illustrations of each seen concept captioned for training
LANGUAGES = ("en", "ja")
ROWS: dict[str, dict] = {
    "base": {},
    "paraclip": {"paraphrase_terms": ("image", "first", "second")},
    "image": {"paraphrase_terms": ("image",)},
    "first": {"paraphrase_terms": ("first",)},
    "second": {"paraphrase_terms": ("second",)},
    "onestep": {"paraphrase_terms": ("image", "first"), "one_step": True},
}
SETTINGS = AdaptSettings(paraphrase=True, teach=False, train_adapter=False)


@dataclass
class ParaphraseExperiment:
    label: str = "oracle regions"  # which regions the library holds
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    wordings: dict[str, int] = field(default_factory=dict)  # per language, all concepts
    pairs: int = 0  # training (item, caption) pairs
    seconds: dict[str, float] = field(default_factory=dict)


class OneStep:
    """A paraphraser whose x'' is x' (the one-step row)."""

    def __init__(self, inner: RuleParaphraser) -> None:
        self.inner = inner

    def paraphrase(self, x: str) -> Paraphrased | None:
        found = self.inner.paraphrase(x)
        return None if found is None else Paraphrased(x, found.first, found.first)


def held_out_wordings(held: RuleParaphraser, name: str, language: str) -> list[str]:
    """The held-out paraphrase set of one concept name in one language: the name and its
    other names of the held-out half (`held`, made from every concept, so a keyword several
    concepts share is left out as in training) in the held-out half of the templates."""
    return in_heldout_templates([name, *held.names_for(name)], language)


def in_heldout_templates(names: Sequence[str], language: str) -> list[str]:
    """Each name in each template of the held-out half, once."""
    templates = half_of(EN_TEMPLATES if language == "en" else JA_TEMPLATES, "heldout")
    return list(dict.fromkeys(t.format(x=n) for t in templates for n in names))


def held_out_set(vocab: Vocabulary, keys: Sequence[str]) -> dict[tuple[str, str], list[str]]:
    """The held-out paraphrase set of these concepts, by (concept key, language)."""
    held = RuleParaphraser.from_labels(world_label_set(vocab.concepts), half="heldout")
    return {
        (k, lang): held_out_wordings(held, _name(vocab, k, lang), lang)
        for k in keys
        for lang in LANGUAGES
    }


def _name(vocab: Vocabulary, key: str, language: str) -> str:
    concept = vocab.by_key[key]
    return concept.en if language == "en" else concept.ja


def canonical(vocab: Vocabulary, key: str, language: str) -> str:
    c = vocab.by_key[key]
    return f"an illustration of {c.en}" if language == "en" else f"{c.ja}の挿絵"


def run_paraphrase_experiment(
    lib: Library,
    concepts: list[set[str]],
    eligible: np.ndarray,
    vocab: Vocabulary,
    *,
    label: str = "oracle regions",
    seed: int = 0,
) -> ParaphraseExperiment:
    """Every row of the experiment on `lib`: `concepts` of its index rows, `eligible` the
    rows that count (the oracle illustrations; on layout regions, the items the filter
    kept): relevant when they hold the concept, captioned for training when they hold one."""
    out = ParaphraseExperiment(label=label)
    index = lib.index(version=BASE)
    oracle = np.asarray(eligible, bool)
    keys = [*vocab.query_seen, *vocab.query_heldout]
    wordings = held_out_set(vocab, keys)
    for lang in LANGUAGES:
        out.wordings[lang] = sum(len(wordings[k, lang]) for k in keys)
    relevant = {k: np.array([k in c for c in concepts]) & oracle for k in keys}
    train_file, out.pairs = _training_pairs(index.item_ids, concepts, oracle, vocab, seed)
    paraphraser = RuleParaphraser.from_labels(world_label_set(vocab.concepts), seed=seed)
    before = version_names(lib)
    try:
        for row, change in ROWS.items():
            started = time.time()
            if row != "base":
                change = dict(change)
                writer = OneStep(paraphraser) if change.pop("one_step", False) else paraphraser
                lib.versions.adapt(
                    annotations=train_file,
                    settings=replace(SETTINGS, seed=seed, **change),
                    paraphraser=writer,
                )
            out.rows[row] = _measure(lib, keys, wordings, relevant, vocab, concepts, oracle)
            out.seconds[row] = round(time.time() - started, 1)
    finally:
        back_to_base(lib, before)
        Path(train_file).unlink(missing_ok=True)
    return out


def _training_pairs(item_ids, concepts, oracle, vocab: Vocabulary, seed: int) -> tuple[str, int]:
    """An annotations file: up to PAIRS_PER_CONCEPT single-concept illustrations of each
    seen concept, captioned by its English or Japanese name in turn."""
    rng = np.random.default_rng(seed)
    by_key = vocab.by_key
    rows: dict[str, list[int]] = {}
    for row in np.flatnonzero(oracle):
        if len(concepts[row]) == 1:
            key = next(iter(concepts[row]))
            if key not in vocab.heldout:
                rows.setdefault(key, []).append(int(row))
    lines = []
    for key, found in sorted(rows.items()):
        for n, row in enumerate(rng.permutation(found)[:PAIRS_PER_CONCEPT]):
            name = by_key[key].en if n % 2 == 0 else by_key[key].ja
            lines.append(json.dumps({"item": int(item_ids[row]), "caption": name}))
    with tempfile.NamedTemporaryFile(
        "w", suffix=".jsonl", delete=False, encoding="utf-8"
    ) as handle:
        handle.write("\n".join(lines) + "\n")
    return handle.name, len(lines)


def _measure(lib, keys, wordings, relevant, vocab, concepts, oracle) -> dict[str, float]:
    """The row's figures; items the filter excluded are never ranked (as in a search)."""
    index = lib.index()
    encoder = lib.query_encoder()
    excluded = lib.filter.excluded_rows()
    values = wording_values(index.vectors, encoder, keys, wordings, relevant, vocab, excluded)
    figures = {name: float(np.mean(v)) for name, v in values.items()}
    hits = zero_shot_hits(index.vectors, encoder, vocab, concepts, oracle)
    figures["zeroshot_seen"] = float(np.mean(hits))
    return {k: round(v, 4) for k, v in figures.items()}


def wording_values(
    vectors: np.ndarray,
    encoder,
    keys: list[str],
    wordings: dict[tuple[str, str], list[str]],
    relevant: dict[str, np.ndarray],
    vocab: Vocabulary,
    excluded: np.ndarray | None = None,
    against_canonical: bool = False,
) -> dict[str, list[float]]:
    """For each language: AO@10 and JS@10 of every pair of a concept's wordings (or, with
    `against_canonical`, of each wording and the canonical query), P@10 and P@100 of each
    wording, and of the canonical query ("an illustration of X")."""
    values: dict[str, list[float]] = {}
    for lang in LANGUAGES:
        got: dict[str, list[float]] = {
            m: [] for m in ("ao10", "js10", "p10", "p100", "canon_p10", "canon_p100")
        }
        for key in keys:
            texts = wordings.get((key, lang), [])
            encoded = encoder.encode_texts([*texts, canonical(vocab, key, lang)])
            tops = []
            for vector in encoded[:-1]:
                scores = _scores(vectors, vector, excluded)
                tops.append(np.argsort(-scores, kind="stable")[:10])
                got["p10"].append(precision_at(scores, relevant[key], 10))
                got["p100"].append(precision_at(scores, relevant[key], 100))
            scores = _scores(vectors, encoded[-1], excluded)
            canon = np.argsort(-scores, kind="stable")[:10]
            pairs = [(t, canon) for t in tops] if against_canonical else combinations(tops, 2)
            for a, b in pairs:
                got["ao10"].append(overlap_at(a, b))
                got["js10"].append(len(set(a) & set(b)) / len(set(a) | set(b)))
            got["canon_p10"].append(precision_at(scores, relevant[key], 10))
            got["canon_p100"].append(precision_at(scores, relevant[key], 100))
        values.update({f"{m}_{lang}": v for m, v in got.items()})
    return values


def handwritten_wordings(keys: list[str]) -> dict[tuple[str, str], list[str]]:
    """Paraphrases of the query concepts written by hand (world/handwritten_paraphrases.json),
    read by no training and used to choose nothing."""
    path = resources.files("sashie.eval.world").joinpath("handwritten_paraphrases.json")
    written = json.loads(path.read_text("utf-8"))
    return {(k, lang): list(written[k][lang]) for k in keys for lang in LANGUAGES}


def kept_back_wordings(
    vocab: Vocabulary, keys: list[str], workdir: Path
) -> dict[tuple[str, str], list[str]] | None:
    """Wordings of each concept that no training of the demo model reads (the kept-back
    part of sashie/eval/world/wordings.py: the gloss of its own WordNet sense, its JMdict
    entries of the held-out half, CLDR keywords of the held-out half) in the held-out half of
    the templates; None when WordNet or JMdict is not installed here."""
    try:
        database = installed_database(workdir)
        language = build_language(
            vocab.concepts, vocab.heldout, read_synsets("n"), entries(database)
        )
    except SashieError:
        return None
    return {
        (k, lang): in_heldout_templates(language.bench[k].of(lang), lang)
        for k in keys
        for lang in LANGUAGES
    }


def _scores(vectors: np.ndarray, vector: np.ndarray, excluded: np.ndarray | None) -> np.ndarray:
    scores = vectors @ vector
    if excluded is not None:
        scores[excluded] = -np.inf
    return scores


def overlap_at(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """AO@k: the mean over depths d = 1..k of |A[:d] ∩ B[:d]| / d."""
    return float(np.mean([len(set(a[:d]) & set(b[:d])) / d for d in range(1, k + 1)]))


def figures(experiment: ParaphraseExperiment, prefix: str = "para") -> dict[str, float]:
    """The --json keys: <prefix>_<metric>_<lang>_<row> and <prefix>_zeroshot_<row>."""
    out = {}
    for row, values in experiment.rows.items():
        for name, value in values.items():
            if name == "zeroshot_seen":
                out[f"{prefix}_zeroshot_{row}"] = value
            else:
                metric, lang = name.rsplit("_", 1)
                out[f"{prefix}_{metric}_{lang}_{row}"] = value
    return out


def format_experiment(e: ParaphraseExperiment) -> str:
    lines = [
        f"paraphrased queries (36 query concepts, {e.label}): held-out wordings "
        f"{e.wordings.get('en', 0)} EN, {e.wordings.get('ja', 0)} JA; tuned rows trained on "
        f"{e.pairs} captions of seen concepts' illustrations, paraphrases alone",
        f"| {'row':<9} | lang | AO@10 |  JS@10 | para P@10 | P@100 | canon P@10 | P@100 | "
        "zero-shot |",
        f"|{'-' * 11}|------|-------|--------|-----------|-------|------------|-------|"
        "-----------|",
    ]
    for row, v in e.rows.items():
        for lang in LANGUAGES:
            lines.append(
                f"| {row:<9} | {lang:<4} | {v[f'ao10_{lang}']:.3f} | {v[f'js10_{lang}']:6.3f} | "
                f"{v[f'p10_{lang}']:9.3f} | {v[f'p100_{lang}']:.3f} | "
                f"{v[f'canon_p10_{lang}']:10.3f} | {v[f'canon_p100_{lang}']:.3f} | "
                f"{v['zeroshot_seen']:9.3f} |"
            )
    lines.append("seconds a row: " + ", ".join(f"{k} {s}" for k, s in e.seconds.items()))
    return "\n".join(lines)

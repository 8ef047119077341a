"""`sashie bench --classify`: labelling the collection, zero-shot and few-shot.

On the oracle illustration crops of an evaluation world, each item's label is right when it
is one of the item's concepts (single-concept crops have one; a crop of several counts any).
- zero-shot, over the 1,093 seen names (items with seen concepts only) and, separately,
  over the 60 held-out names (items holding a held-out concept): `prompt` (plain zero-shot,
  a prompt ensemble of the EN and JA names), `coder`, `coder` without re-rank, and `coder`
  without each kind of text (bank.py). The text banks come from the world's CLDR keywords
  (world/cldr_keywords.json, Unicode licence), English and Japanese, never from held-out
  names the model was kept from.
- few-shot on the 36 query concepts, crops showing one of them: k shots a class drawn at random
  (DRAWS draws), the rest measured: Tip-Adapter over CODER vectors with CODER zero-shot
  scores (`coder`), over the stored vectors with prompt scores (`raw`: Tip-Adapter as
  published), and a logistic-regression probe on the stored vectors (`probe`).
- a curator's small label set (OPEN_SET_CLASSES of the query concepts) over every crop of
  the library, illustrations and text alike, most of which show none of its classes:
  `lib.labels.classify` with every item forced into a class, and with "other" (none of these);
  each class's members (the items it labels) are measured for precision and recall.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..classify.bank import KINDS, TextBank, build_bank
from ..classify.coder import OTHER, OTHER_BELOW, Scoring, class_scores, coder_vectors
from ..classify.fewshot import SCALE, fit_tip_adapter
from ..encoders import Encoder
from ..library import Library
from .truth import ORACLE_ILLUSTRATION
from .world.labels import world_label_set
from .world.vocab import Vocabulary

OPEN_SET_CLASSES = 6  # a curator's small label set, of seen query concepts
OPEN_SETS = 4  # such sets measured, one after the other
SHOTS = (1, 2, 4, 8, 16)
DRAWS = 3  # few-shot draws of the shots, averaged
FEWSHOT_METHODS = ("coder", "raw", "probe")


@dataclass
class ClassifyExperiment:
    zero_shot: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> split -> acc
    counts: dict[str, int] = field(default_factory=dict)  # items measured per split
    few_shot: dict[int, dict[str, float]] = field(default_factory=dict)  # shots -> method -> acc
    few_shot_items: int = 0
    bank_texts: dict[str, int] = field(default_factory=dict)  # texts of the seen bank by kind
    seconds: dict[str, float] = field(default_factory=dict)
    open_set: list[OpenSetRow] = field(default_factory=list)  # a class under each rule
    open_set_items: int = 0  # crops the small label set labelled


@dataclass(frozen=True)
class OpenSetRow:
    rule: str  # "forced" (every item gets a class) or "other below Z"
    label: str  # a class, or "other"
    showing: int  # crops that show the class
    members: int  # crops the rule labels with it
    right: int  # members that show it

    @property
    def precision(self) -> float:
        return self.right / self.members if self.members else 0.0

    @property
    def recall(self) -> float:
        return self.right / self.showing if self.showing else 0.0


def run_open_set(
    lib: Library,
    concepts: list[set[str]],
    crops: np.ndarray,
    vocab: Vocabulary,
    rules: Sequence[float | None] = (None, OTHER_BELOW),
) -> tuple[list[OpenSetRow], int]:
    """Label the library with OPEN_SETS small label sets of OPEN_SET_CLASSES seen query
    concepts each, under each rule (None: forced; Z: "other" below Z), and measure each
    class's members among the `crops` rows of the active index (`concepts`: what each index
    row shows)."""
    item_ids = lib.index().item_ids
    shown = np.flatnonzero(crops)
    rows: list[OpenSetRow] = []
    for first in range(0, OPEN_SETS * OPEN_SET_CLASSES, OPEN_SET_CLASSES):
        classes = [vocab.by_key[k] for k in vocab.query_seen[first : first + OPEN_SET_CLASSES]]
        label_set = world_label_set(classes, name="open-set")
        showing = {c.key: sum(1 for r in shown if c.key in concepts[r]) for c in classes}
        for rule in rules:
            lib.labels.classify(label_set, other_below=rule)
            given = lib.labels.item_classes(label_set.name)
            labels = [given.get(int(item_ids[r])) for r in shown]
            name = "forced" if rule is None else f"other below {rule:g}"
            for concept in classes:
                members = [r for r, label in zip(shown, labels) if label == concept.en]
                right = sum(1 for r in members if concept.key in concepts[r])
                rows.append(OpenSetRow(name, concept.en, showing[concept.key], len(members), right))
            others = sum(1 for label in labels if label == OTHER)
            rows.append(OpenSetRow(name, OTHER, 0, others, 0))
        lib.labels.remove(label_set.name)
    return rows, len(shown)


def run_classify_experiment(
    encoder: Encoder,
    vectors: np.ndarray,
    concepts: list[set[str]],
    detectors: np.ndarray,
    vocab: Vocabulary,
    *,
    seed: int = 0,
) -> ClassifyExperiment:
    """Zero-shot and few-shot labelling of the oracle illustration crops (`vectors` and
    their `concepts`, row by row)."""
    out = ClassifyExperiment()
    oracle = detectors == ORACLE_ILLUSTRATION
    splits = {
        "seen": (
            list(vocab.seen),
            [r for r in np.flatnonzero(oracle) if concepts[r] and not concepts[r] & vocab.heldout],
        ),
        "heldout": (
            [c for c in vocab.concepts if c.key in vocab.heldout],
            [r for r in np.flatnonzero(oracle) if concepts[r] & vocab.heldout],
        ),
    }
    for split, (classes, rows) in splits.items():
        started = time.time()
        bank = build_bank(world_label_set(classes), encoder.encode_texts)
        out.seconds[f"bank_{split}"] = round(time.time() - started, 2)
        if split == "seen":
            out.bank_texts = _bank_sizes(bank)
        keys = np.array([c.key for c in classes])
        x, truths = vectors[rows], [concepts[r] for r in rows]
        out.counts[split] = len(rows)
        for method, (scoring, used) in _zero_shot_rows(bank).items():
            started = time.time()
            _, accuracy = evaluate(used, x, truths, keys, scoring)
            out.zero_shot.setdefault(method, {})[split] = accuracy
            out.seconds[f"{method}_{split}"] = round(time.time() - started, 2)
    _few_shot(out, encoder, vectors, concepts, oracle, vocab, seed)
    return out


def zero_shot_hits(
    vectors: np.ndarray,
    encoder: Encoder,
    vocab: Vocabulary,
    concepts: list[set[str]],
    eligible: np.ndarray,
    heldout: bool = False,
) -> list[float]:
    """Plain zero-shot ("an illustration of X"): 1 or 0 for each eligible row. Over the seen
    names, the rows that show seen concepts only (the bench's `zeroshot_acc_seen`); with
    `heldout`, over the 60 held-out names, the rows that show one (`zeroshot_acc_heldout`,
    as the classify bench's prompt row)."""
    named = [c for c in vocab.concepts if (c.key in vocab.heldout) == heldout]
    keys = [c.key for c in named]
    names = encoder.encode_texts([f"an illustration of {c.en}" for c in named])
    rows = [
        r
        for r in np.flatnonzero(eligible)
        if concepts[r] and bool(concepts[r] & vocab.heldout) == heldout
    ]
    guesses = (vectors[rows] @ names.T).argmax(axis=1) if rows else []
    return [float(keys[g] in concepts[r]) for g, r in zip(guesses, rows)]


def evaluate(
    bank: TextBank,
    vectors: np.ndarray,
    truths: list[set[str]],
    keys: np.ndarray,
    scoring: Scoring,
) -> tuple[np.ndarray, float]:
    """(each row's predicted class key, top-1 accuracy against `truths`): the predictions
    are made before the truths are looked at, and never from them."""
    guesses = keys[class_scores(bank, vectors, scoring).argmax(axis=1)]
    return guesses, _accuracy(guesses, truths)


def _zero_shot_rows(bank: TextBank) -> dict[str, tuple[Scoring, TextBank]]:
    rows = {
        "prompt": (Scoring("prompt"), bank),
        "coder": (Scoring("coder"), bank),
        "coder_norerank": (Scoring("coder", rerank=False), bank),
    }
    for kind in KINDS:
        if kind != "differences":  # leaving them out is coder_norerank
            rows[f"coder_no_{kind}"] = (Scoring("coder"), bank.without(kind))
    return rows


def _few_shot(out, encoder, vectors, concepts, oracle, vocab, seed) -> None:
    from sklearn.linear_model import LogisticRegression

    by_key = vocab.by_key
    classes = [by_key[k] for k in vocab.query]
    index_of = {c.key: i for i, c in enumerate(classes)}
    # crops showing exactly one query concept (others may be beside it): that is their class
    rows = np.array(
        [r for r in np.flatnonzero(oracle) if len(concepts[r] & index_of.keys()) == 1], np.int64
    )
    labels = np.array([index_of[next(iter(concepts[r] & index_of.keys()))] for r in rows])
    out.few_shot_items = len(rows)
    bank = build_bank(world_label_set(classes), encoder.encode_texts)
    x = vectors[rows]
    coder_zs = class_scores(bank, x, Scoring("coder"))
    prompt_zs = class_scores(bank, x, Scoring("prompt"))
    features = {"coder": coder_vectors(bank, x), "raw": x}
    zero_shot = {"coder": coder_zs, "raw": prompt_zs}
    rng = np.random.default_rng(seed)
    for shots in SHOTS:
        right: dict[str, list[float]] = {m: [] for m in FEWSHOT_METHODS}
        for _ in range(DRAWS):
            train = np.concatenate(
                [rng.permutation(np.flatnonzero(labels == c))[:shots] for c in range(len(classes))]
            )
            test = np.setdiff1d(np.arange(len(rows)), train)
            if not len(test):  # a small world: every crop is a shot, none is left to measure
                break
            for method in ("coder", "raw"):
                cache = fit_tip_adapter(
                    features[method][train], labels[train], zero_shot[method][train], len(classes)
                )
                guess = cache.logits(features[method][test], zero_shot[method][test]).argmax(axis=1)
                right[method].append(float((guess == labels[test]).mean()))
            with warnings.catch_warnings():  # sklearn doubts a 36-class target of 36 rows
                warnings.simplefilter("ignore", UserWarning)
                probe = LogisticRegression(C=SCALE / 10, max_iter=1000).fit(x[train], labels[train])
            right["probe"].append(float((probe.predict(x[test]) == labels[test]).mean()))
        if right["probe"]:
            out.few_shot[shots] = {m: round(float(np.mean(v)), 4) for m, v in right.items()}
    out.few_shot[0] = {
        "coder": round(float((coder_zs.argmax(axis=1) == labels).mean()), 4),
        "raw": round(float((prompt_zs.argmax(axis=1) == labels).mean()), 4),
    }


def _accuracy(guesses: np.ndarray, truths: list[set[str]]) -> float:
    if not truths:
        return 0.0
    return round(float(np.mean([g in t for g, t in zip(guesses, truths)])), 4)


def _bank_sizes(bank: TextBank) -> dict[str, int]:
    sizes = {"names": len(bank.names)}
    for kind in ("attributes", "analogies"):
        sizes[kind] = sum(1 for _, k, _ in bank.texts if k == kind)
    sizes["differences"] = len(bank.pairs)
    return sizes


def open_set_means(rows: list[OpenSetRow]) -> dict[str, tuple[float, float, int]]:
    """Each rule's mean precision and recall over the classes, and its "other" count."""
    out = {}
    for rule in dict.fromkeys(r.rule for r in rows):
        mine = [r for r in rows if r.rule == rule and r.label != OTHER]
        others = sum(r.members for r in rows if r.rule == rule and r.label == OTHER)
        out[rule] = (
            round(float(np.mean([r.precision for r in mine])), 4),
            round(float(np.mean([r.recall for r in mine])), 4),
            others,
        )
    return out


def figures(experiment: ClassifyExperiment) -> dict[str, float]:
    """The --json keys: classify_acc_<split>_<method>, classify_fewshot_<shots>_<method> and
    classify_open_{precision,recall}_{forced,other}."""
    out: dict[str, float] = {}
    for rule, (precision, recall, _) in open_set_means(experiment.open_set).items():
        key = "forced" if rule == "forced" else "other"
        out[f"classify_open_precision_{key}"] = precision
        out[f"classify_open_recall_{key}"] = recall
    for method, splits in experiment.zero_shot.items():
        for split, value in splits.items():
            out[f"classify_acc_{split}_{method}"] = value
    for shots, methods in sorted(experiment.few_shot.items()):
        for method, value in methods.items():
            out[f"classify_fewshot_{shots}_{method}"] = value
    return out


def format_experiment(experiment: ClassifyExperiment) -> str:
    e = experiment
    lines = [
        "labelling the oracle illustration crops: top-1 accuracy; seen: over the 1,093 seen "
        f"names ({e.counts.get('seen', 0)} items), held-out: over the 60 held-out names "
        f"({e.counts.get('heldout', 0)} items)",
        f"text bank (seen): {', '.join(f'{k} {v}' for k, v in e.bank_texts.items())}",
        "",
        f"| {'method':<22} | {'seen':>6} | {'held-out':>8} |",
        f"|{'-' * 24}|{'-' * 8}|{'-' * 10}|",
    ]
    for method, splits in e.zero_shot.items():
        lines.append(
            f"| {method:<22} | {splits.get('seen', 0):6.3f} | {splits.get('heldout', 0):8.3f} |"
        )
    lines += [
        "",
        f"few-shot on the 36 query concepts ({e.few_shot_items} crops showing one of them; "
        f"mean of {DRAWS} draws; 0 shots: zero-shot)",
        f"| {'shots':>5} | {'coder (Tip on CODER)':>20} | {'raw (Tip on vectors)':>20} | "
        f"{'probe (log. reg.)':>17} |",
        f"|{'-' * 7}|{'-' * 22}|{'-' * 22}|{'-' * 19}|",
    ]
    for shots, methods in sorted(e.few_shot.items()):
        probe = methods.get("probe")
        lines.append(
            f"| {shots:>5} | {methods['coder']:20.3f} | {methods['raw']:20.3f} | "
            f"{'-' if probe is None else f'{probe:.3f}':>17} |"
        )
    if e.open_set:
        lines += ["", *format_open_set(e.open_set, e.open_set_items)]
    return "\n".join(lines)


def format_open_set(rows: list[OpenSetRow], items: int) -> list[str]:
    """Each class's members under each rule, side by side, then the means."""
    rules = list(dict.fromkeys(r.rule for r in rows))
    by_rule = {rule: [r for r in rows if r.rule == rule and r.label != OTHER] for rule in rules}
    heads = [f"{rule}: members, precision, recall" for rule in rules]

    def cells(values: list[tuple[int, float, float]]) -> str:
        return "".join(
            f" {f'{n:>7} {p:9.3f} {r:7.3f}':>{len(h)}} |" for h, (n, p, r) in zip(heads, values)
        )

    lines = [
        f"{OPEN_SETS} label sets of {OPEN_SET_CLASSES} classes each over all {items} crops "
        "(illustrations and text; most show none of a set's classes), prompt scoring",
        f"| {'class':<22} | {'showing':>7} |" + "".join(f" {h} |" for h in heads),
        f"|{'-' * 24}|{'-' * 9}|" + "".join(f"{'-' * (len(h) + 2)}|" for h in heads),
    ]
    for i, first in enumerate(by_rule[rules[0]]):
        row = [by_rule[rule][i] for rule in rules]
        values = [(r.members, r.precision, r.recall) for r in row]
        lines.append(f"| {first.label[:22]:<22} | {first.showing:>7} |" + cells(values))
    means = open_set_means(rows)
    values = [(means[rule][2], means[rule][0], means[rule][1]) for rule in rules]
    lines.append(f"| {'mean; members: other':<22} | {'':>7} |" + cells(values))
    return lines

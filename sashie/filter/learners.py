"""Training the keep/exclude filter: the seed paper's five learners, tuned and compared.

    report = train_filter(vectors, keep, seed=0)
    print(table_overall(report)); print(table_per_class(report))
    report.best.filter.save(folder)

Each learner is tuned by grid search with 5-fold cross-validation on 80 % of the labels and
scored on the other 20 % (Table 1: weighted figures; Table 2: per class).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import SashieError
from .model import CLASSES, THRESHOLD, KeepFilter

LEARNERS = ("random_forest", "xgboost", "lightgbm", "svm", "mlp")
MIN_LABELS = 10  # per class: 5-fold cross-validation needs a few in every fold


def _estimator(name: str, seed: int):
    """The learner and its parameter grid (small: labels are ~1,000, the CPU has 2 cores)."""
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return (
            RandomForestClassifier(random_state=seed, n_jobs=1),
            {"n_estimators": [200], "max_depth": [None, 16], "max_features": ["sqrt"]},
        )
    if name == "xgboost":
        from xgboost import XGBClassifier

        return (
            XGBClassifier(
                random_state=seed,
                n_jobs=1,
                tree_method="hist",
                max_depth=4,
                learning_rate=0.1,
                colsample_bytree=0.5,
                verbosity=0,
            ),
            {"n_estimators": [100, 200]},
        )
    if name == "lightgbm":
        from lightgbm import LGBMClassifier

        return (
            LGBMClassifier(
                random_state=seed,
                n_jobs=1,
                learning_rate=0.1,
                num_leaves=15,
                colsample_bytree=0.5,
                verbose=-1,
            ),
            {"n_estimators": [100, 200]},
        )
    if name == "svm":
        from sklearn.svm import SVC

        return (
            SVC(random_state=seed),
            [{"kernel": ["rbf"], "C": [1, 10, 100]}, {"kernel": ["linear"], "C": [0.1, 1]}],
        )
    if name == "mlp":
        from sklearn.neural_network import MLPClassifier

        return (
            MLPClassifier(random_state=seed, hidden_layer_sizes=(128,), max_iter=200),
            {"alpha": [1e-4, 1e-2]},
        )
    raise SashieError(f"unknown learner {name!r}; known: {', '.join(LEARNERS)}")


def parse_learners(names: str | None) -> tuple[str, ...]:
    """ "random_forest,svm" → ("random_forest", "svm"); None → all five."""
    if not names:
        return LEARNERS
    parsed = tuple(n.strip() for n in names.split(",") if n.strip())
    for name in parsed:
        if name not in LEARNERS:
            raise SashieError(f"unknown learner {name!r}; known: {', '.join(LEARNERS)}")
    return parsed


@dataclass
class LearnerResult:
    name: str
    params: dict
    cv_f1: float  # mean weighted F1 of the best grid point over the 5 folds
    metrics: dict  # weighted precision/recall/f1, accuracy on the held-out 20 %
    per_class: dict  # class → precision, recall, f1, support
    seconds: float
    filter: KeepFilter


@dataclass
class TrainReport:
    results: list[LearnerResult] = field(default_factory=list)
    train_size: int = 0
    test_size: int = 0

    @property
    def best(self) -> LearnerResult:
        return max(self.results, key=lambda r: (r.metrics["weighted_f1"], -r.seconds))

    def as_dict(self) -> dict:
        return {
            "models": {
                r.name: {
                    **r.metrics,
                    "cv_weighted_f1": r.cv_f1,
                    "params": r.params,
                    "per_class": r.per_class,
                    "seconds": r.seconds,
                }
                for r in self.results
            },
            "best": self.best.name,
            "train_size": self.train_size,
            "test_size": self.test_size,
        }


def verdict_metrics(truth: np.ndarray, predicted: np.ndarray) -> tuple[dict, dict]:
    """(weighted precision/recall/F1 and accuracy, per-class figures with support)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    truth, predicted = np.asarray(truth, np.int64), np.asarray(predicted, np.int64)
    p, r, f, _ = precision_recall_fscore_support(
        truth, predicted, average="weighted", zero_division=0
    )
    pc, rc, fc, support = precision_recall_fscore_support(
        truth, predicted, labels=[0, 1], zero_division=0
    )
    overall = {
        "weighted_precision": round(float(p), 4),
        "weighted_recall": round(float(r), 4),
        "weighted_f1": round(float(f), 4),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
    }
    per_class = {
        CLASSES[c]: {
            "precision": round(float(pc[c]), 4),
            "recall": round(float(rc[c]), 4),
            "f1": round(float(fc[c]), 4),
            "support": int(support[c]),
        }
        for c in (0, 1)
    }
    return overall, per_class


def train_filter(
    vectors: np.ndarray,
    keep: np.ndarray,
    *,
    learners=LEARNERS,
    seed: int = 0,
    progress: bool = False,
) -> TrainReport:
    """Fit each learner (grid search, 5-fold CV on an 80 % split), score it on the other 20 %."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
    from tqdm import tqdm

    vectors = np.asarray(vectors, np.float32)
    keep = np.asarray(keep, bool).astype(np.int64)
    counts = np.bincount(keep, minlength=2)
    if counts.min() < MIN_LABELS:
        raise SashieError(
            f"too few labels: {counts[1]} keep and {counts[0]} exclude; "
            f"label at least {MIN_LABELS} of each"
        )
    x_train, x_test, y_train, y_test = train_test_split(
        vectors, keep, test_size=0.2, stratify=keep, random_state=seed
    )
    report = TrainReport(train_size=len(y_train), test_size=len(y_test))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    for name in tqdm(learners, desc="filter", unit="learner", disable=not progress):
        started = time.perf_counter()
        estimator, grid = _estimator(name, seed)
        search = GridSearchCV(estimator, grid, cv=folds, scoring="f1_weighted", n_jobs=1)
        with warnings.catch_warnings():  # an MLP grid point stopping at max_iter is fine
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(x_train, y_train)
        fitted = KeepFilter(name, search.best_estimator_, {"params": search.best_params_})
        overall, per_class = verdict_metrics(y_test, fitted.scores(x_test) >= THRESHOLD)
        report.results.append(
            LearnerResult(
                name,
                _plain(search.best_params_),
                round(float(search.best_score_), 4),
                overall,
                per_class,
                round(time.perf_counter() - started, 1),
                fitted,
            )
        )
    return report


def _plain(params: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def table_overall(report: TrainReport) -> str:
    """Table 1: each learner's weighted precision, recall, F1 and accuracy on the 20 %."""
    lines = [
        f"Table 1: keep/exclude filter on {report.test_size} held-out labels "
        f"(trained on {report.train_size}; weighted averages)",
        "| learner        | precision | recall |    F1 | accuracy | CV F1 | seconds |",
        "|----------------|-----------|--------|-------|----------|-------|---------|",
    ]
    for r in report.results:
        m = r.metrics
        mark = " *" if r is report.best else ""
        lines.append(
            f"| {r.name + mark:<14} | {m['weighted_precision']:9.3f} | "
            f"{m['weighted_recall']:6.3f} | {m['weighted_f1']:5.3f} | "
            f"{m['accuracy']:8.3f} | {r.cv_f1:5.3f} | {r.seconds:7.1f} |"
        )
    lines.append("* kept as the library's filter")
    return "\n".join(lines)


def table_per_class(report: TrainReport) -> str:
    """Table 2: precision, recall, F1 and support of each class, for each learner."""
    lines = [
        "Table 2: per class on the held-out labels",
        "| learner        | class   | precision | recall |    F1 | support |",
        "|----------------|---------|-----------|--------|-------|---------|",
    ]
    for r in report.results:
        for c in CLASSES:
            m = r.per_class[c]
            lines.append(
                f"| {r.name:<14} | {c:<7} | {m['precision']:9.3f} | "
                f"{m['recall']:6.3f} | {m['f1']:5.3f} | {m['support']:7d} |"
            )
    return "\n".join(lines)

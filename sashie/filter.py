"""The keep/exclude filter: a light classifier on the items' vectors that drops text, stains,
blank paper and blur, so that searches return illustrations.

    report = train_filter(vectors, keep, seed=0)     # the seed paper's five learners, tuned
    print(table_overall(report)); print(table_per_class(report))
    report.best.save(folder)                        # no pickle: JSON + safetensors/xgb/lgbm
    scores = KeepFilter.load(folder).scores(vectors)  # probability of "keep", per row

Each learner is tuned by grid search with 5-fold cross-validation on 80 % of the labels and
scored on the other 20 %. A saved filter is data only: loading it runs no code from the file
(random forest, SVM and MLP as arrays in safetensors; XGBoost as its JSON model; LightGBM as
its text model).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SashieError

LEARNERS = ("random_forest", "xgboost", "lightgbm", "svm", "mlp")
CLASSES = ("exclude", "keep")  # label 0, label 1
THRESHOLD = 0.5  # keep when the probability of "keep" reaches it
CONFIG = "filter.json"
MIN_LABELS = 10  # per class: 5-fold cross-validation needs a few in every fold


def _estimator(name: str, seed: int):
    """The learner and its parameter grid (small: labels are ~1,000, the CPU has 2 cores)."""
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return (RandomForestClassifier(random_state=seed, n_jobs=1),
                {"n_estimators": [200], "max_depth": [None, 16], "max_features": ["sqrt"]})
    if name == "xgboost":
        from xgboost import XGBClassifier

        return (XGBClassifier(random_state=seed, n_jobs=1, tree_method="hist", max_depth=4,
                              learning_rate=0.1, colsample_bytree=0.5, verbosity=0),
                {"n_estimators": [100, 200]})
    if name == "lightgbm":
        from lightgbm import LGBMClassifier

        return (LGBMClassifier(random_state=seed, n_jobs=1, learning_rate=0.1, num_leaves=15,
                               colsample_bytree=0.5, verbose=-1),
                {"n_estimators": [100, 200]})
    if name == "svm":
        from sklearn.svm import SVC

        return (SVC(random_state=seed),
                [{"kernel": ["rbf"], "C": [1, 10, 100]}, {"kernel": ["linear"], "C": [0.1, 1]}])
    if name == "mlp":
        from sklearn.neural_network import MLPClassifier

        return (MLPClassifier(random_state=seed, hidden_layer_sizes=(128,), max_iter=200),
                {"alpha": [1e-4, 1e-2]})
    raise SashieError(f"unknown learner {name!r}; known: {', '.join(LEARNERS)}")


def parse_learners(names: str | None) -> tuple[str, ...]:
    """"random_forest,svm" → ("random_forest", "svm"); None → all five."""
    if not names:
        return LEARNERS
    parsed = tuple(n.strip() for n in names.split(",") if n.strip())
    for name in parsed:
        if name not in LEARNERS:
            raise SashieError(f"unknown learner {name!r}; known: {', '.join(LEARNERS)}")
    return parsed


# --- the saved filter ----------------------------------------------------------------------

class KeepFilter:
    """A fitted learner that scores vectors: the probability that an item is an illustration."""

    def __init__(self, learner: str, model, meta: dict | None = None) -> None:
        self.learner = learner
        self.model = model  # the fitted estimator, or the arrays read from disk
        self.meta = dict(meta or {})

    def scores(self, vectors: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """P(keep) for each row, float32, computed a chunk of rows at a time."""
        out = np.empty(len(vectors), np.float32)
        for start in range(0, len(vectors), chunk):
            block = np.asarray(vectors[start:start + chunk], dtype=np.float32)
            out[start:start + len(block)] = self._scores(block)
        return out

    def _scores(self, x: np.ndarray) -> np.ndarray:
        m = self.model
        if isinstance(m, dict):  # arrays read from safetensors
            if self.learner == "random_forest":
                return _forest_scores(m, x)
            if self.learner == "svm":
                return _svm_scores(m, self.meta["params"], x)
            if self.learner == "mlp":
                return _mlp_scores(m, self.meta["params"], x)
        if self.learner == "lightgbm" and not hasattr(m, "predict_proba"):
            return m.predict(x)  # a lightgbm.Booster read from its text model
        if self.learner == "svm":
            return _sigmoid(m.decision_function(x))
        return m.predict_proba(x)[:, 1]

    def save(self, folder: Path) -> None:
        """Write the filter into `folder` (replaced as a whole, never half-written)."""
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        meta = dict(self.meta, learner=self.learner, threshold=THRESHOLD, classes=CLASSES)
        meta["params"] = dict(meta.get("params", {}), **_saved_params(self))
        if self.learner == "xgboost":
            self.model.get_booster().save_model(tmp / "model.json")
            meta["weights"] = "model.json"
        elif self.learner == "lightgbm":
            self.model.booster_.save_model(str(tmp / "model.txt"))
            meta["weights"] = "model.txt"
        else:
            from safetensors.numpy import save_file

            save_file(_arrays(self), str(tmp / "model.safetensors"))
            meta["weights"] = "model.safetensors"
        (tmp / CONFIG).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def read_meta(folder: Path) -> dict:
        """A saved filter's description (filter.json) without loading its model."""
        try:
            return json.loads((Path(folder) / CONFIG).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SashieError(f"no readable filter in {folder} ({e})") from None

    @classmethod
    def load(cls, folder: Path) -> "KeepFilter":
        """Read a saved filter: JSON and weight files only, nothing executed."""
        folder = Path(folder)
        meta = cls.read_meta(folder)
        learner, weights = meta.get("learner"), folder / meta.get("weights", "")
        if learner == "xgboost":
            import xgboost

            model = xgboost.XGBClassifier()
            model.load_model(weights)
        elif learner == "lightgbm":
            import lightgbm

            model = lightgbm.Booster(model_file=str(weights))
        elif learner in ("random_forest", "svm", "mlp"):
            from safetensors.numpy import load_file

            model = load_file(str(weights))
        else:
            raise SashieError(f"unknown filter learner {learner!r} in {folder}")
        return cls(learner, model, meta)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))).astype(np.float32)


def _saved_params(f: KeepFilter) -> dict:
    m = f.model
    if f.learner == "svm":
        return {"kernel": m.kernel, "gamma": float(m._gamma)}
    if f.learner == "mlp":
        return {"activation": m.activation, "layers": len(m.coefs_)}
    return {}


def _arrays(f: KeepFilter) -> dict[str, np.ndarray]:
    """The fitted model as plain arrays (random forest, SVM, MLP)."""
    m = f.model
    if f.learner == "svm":  # decision = dual_coef · K(support, x) + intercept; > 0 is "keep"
        return {"support": m.support_vectors_.astype(np.float32),
                "dual_coef": m.dual_coef_[0].astype(np.float32),
                "intercept": np.asarray(m.intercept_, np.float32)}
    if f.learner == "mlp":
        arrays = {}
        for i, (w, b) in enumerate(zip(m.coefs_, m.intercepts_)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
        return arrays
    # random forest: every tree's nodes laid end to end (children numbered within the tree)
    keep_class = list(m.classes_).index(1)
    parts: dict[str, list] = {"left": [], "right": [], "feature": [], "threshold": [],
                              "keep": []}
    sizes = []
    for tree in (e.tree_ for e in m.estimators_):
        parts["left"].append(tree.children_left)
        parts["right"].append(tree.children_right)
        parts["feature"].append(np.maximum(tree.feature, 0))
        parts["threshold"].append(tree.threshold)
        value = tree.value[:, 0, :]
        parts["keep"].append(value[:, keep_class] / np.maximum(value.sum(1), 1e-12))
        sizes.append(tree.node_count)
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return {"left": arrays["left"].astype(np.int32), "right": arrays["right"].astype(np.int32),
            "feature": arrays["feature"].astype(np.int32),
            "threshold": arrays["threshold"].astype(np.float64),
            "keep": arrays["keep"].astype(np.float64),
            "tree_sizes": np.array(sizes, np.int64)}


def _forest_trees(m: dict, n_features: int) -> list:
    """scikit-learn Tree objects rebuilt from the stored arrays, for its compiled predict."""
    from sklearn.tree._tree import NODE_DTYPE, Tree

    trees, start = [], 0
    for size in m["tree_sizes"].tolist():
        part = slice(start, start + size)
        nodes = np.zeros(size, dtype=NODE_DTYPE)
        nodes["left_child"], nodes["right_child"] = m["left"][part], m["right"][part]
        nodes["feature"], nodes["threshold"] = m["feature"][part], m["threshold"][part]
        keep = m["keep"][part]
        tree = Tree(n_features, np.array([2], dtype=np.intp), 1)
        tree.__setstate__({"max_depth": size, "node_count": size, "nodes": nodes,
                           "values": np.stack([1 - keep, keep], 1)[:, None, :].copy()})
        trees.append(tree)
        start += size
    return trees


def _forest_scores(m: dict, x: np.ndarray) -> np.ndarray:
    """Mean leaf probability of "keep" over the trees."""
    if "trees" not in m:
        m["trees"] = _forest_trees(m, x.shape[1])
    total = np.zeros(len(x))
    for tree in m["trees"]:
        total += tree.predict(x).reshape(len(x), -1)[:, 1]
    return (total / len(m["trees"])).astype(np.float32)


def _svm_scores(m: dict, params: dict, x: np.ndarray) -> np.ndarray:
    support = m["support"]
    if params["kernel"] == "linear":
        kernel = x @ support.T
    else:
        squared = ((x * x).sum(1)[:, None] + (support * support).sum(1)[None, :]
                   - 2 * x @ support.T)
        kernel = np.exp(-params["gamma"] * np.maximum(squared, 0))
    return _sigmoid(kernel @ m["dual_coef"] + m["intercept"][0])


def _mlp_scores(m: dict, params: dict, x: np.ndarray) -> np.ndarray:
    activations = {"relu": lambda a: np.maximum(a, 0), "tanh": np.tanh,
                   "logistic": _sigmoid, "identity": lambda a: a}
    act = activations[params["activation"]]
    h = x
    for i in range(params["layers"]):
        h = h @ m[f"w{i}"] + m[f"b{i}"]
        if i < params["layers"] - 1:
            h = act(h)
    return _sigmoid(h[:, 0])


# --- training and the tables ---------------------------------------------------------------

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
            "models": {r.name: {**r.metrics, "cv_weighted_f1": r.cv_f1, "params": r.params,
                                "per_class": r.per_class, "seconds": r.seconds}
                       for r in self.results},
            "best": self.best.name,
            "train_size": self.train_size,
            "test_size": self.test_size,
        }


def verdict_metrics(truth: np.ndarray, predicted: np.ndarray) -> tuple[dict, dict]:
    """(weighted precision/recall/F1 and accuracy, per-class figures with support)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    truth, predicted = np.asarray(truth, np.int64), np.asarray(predicted, np.int64)
    p, r, f, _ = precision_recall_fscore_support(truth, predicted, average="weighted",
                                                 zero_division=0)
    pc, rc, fc, support = precision_recall_fscore_support(truth, predicted, labels=[0, 1],
                                                          zero_division=0)
    overall = {"weighted_precision": round(float(p), 4), "weighted_recall": round(float(r), 4),
               "weighted_f1": round(float(f), 4),
               "accuracy": round(float(accuracy_score(truth, predicted)), 4)}
    per_class = {CLASSES[c]: {"precision": round(float(pc[c]), 4),
                              "recall": round(float(rc[c]), 4), "f1": round(float(fc[c]), 4),
                              "support": int(support[c])} for c in (0, 1)}
    return overall, per_class


def train_filter(vectors: np.ndarray, keep: np.ndarray, *, learners=LEARNERS, seed: int = 0,
                 progress: bool = False) -> TrainReport:
    """Fit each learner (grid search, 5-fold CV on an 80 % split), score it on the other 20 %."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
    from tqdm import tqdm

    vectors = np.asarray(vectors, np.float32)
    keep = np.asarray(keep, bool).astype(np.int64)
    counts = np.bincount(keep, minlength=2)
    if counts.min() < MIN_LABELS:
        raise SashieError(f"too few labels: {counts[1]} keep and {counts[0]} exclude; "
                          f"label at least {MIN_LABELS} of each")
    x_train, x_test, y_train, y_test = train_test_split(
        vectors, keep, test_size=0.2, stratify=keep, random_state=seed)
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
        report.results.append(LearnerResult(
            name, _plain(search.best_params_), round(float(search.best_score_), 4), overall,
            per_class, round(time.perf_counter() - started, 1), fitted))
    return report


def _plain(params: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def table_overall(report: TrainReport) -> str:
    """Table 1: each learner's weighted precision, recall, F1 and accuracy on the 20 %."""
    lines = [f"Table 1: keep/exclude filter on {report.test_size} held-out labels "
             f"(trained on {report.train_size}; weighted averages)",
             "| learner        | precision | recall |    F1 | accuracy | CV F1 | seconds |",
             "|----------------|-----------|--------|-------|----------|-------|---------|"]
    for r in report.results:
        m = r.metrics
        mark = " *" if r is report.best else ""
        lines.append(f"| {r.name + mark:<14} | {m['weighted_precision']:9.3f} | "
                     f"{m['weighted_recall']:6.3f} | {m['weighted_f1']:5.3f} | "
                     f"{m['accuracy']:8.3f} | {r.cv_f1:5.3f} | {r.seconds:7.1f} |")
    lines.append("* kept as the library's filter")
    return "\n".join(lines)


def table_per_class(report: TrainReport) -> str:
    """Table 2: precision, recall, F1 and support of each class, for each learner."""
    lines = ["Table 2: per class on the held-out labels",
             "| learner        | class   | precision | recall |    F1 | support |",
             "|----------------|---------|-----------|--------|-------|---------|"]
    for r in report.results:
        for c in CLASSES:
            m = r.per_class[c]
            lines.append(f"| {r.name:<14} | {c:<7} | {m['precision']:9.3f} | "
                         f"{m['recall']:6.3f} | {m['f1']:5.3f} | {m['support']:7d} |")
    return "\n".join(lines)

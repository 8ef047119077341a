"""The keep/exclude filter as a saved model: scoring vectors, and files that are data only.

A saved filter is a folder, `filter.json` and one weight file: the random forest, SVM and MLP
as arrays in safetensors, XGBoost as its JSON model, LightGBM as its text model. Loading one
runs no code from the file.

    scores = KeepFilter.load(folder).scores(vectors)   # probability of "keep", per row
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Damaged, SashieError
from ..store.tensor_files import read_tensors

CLASSES = ("exclude", "keep")  # label 0, label 1
THRESHOLD = 0.5  # keep when the probability of "keep" reaches it
CONFIG = "filter.json"


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
            block = np.asarray(vectors[start : start + chunk], dtype=np.float32)
            out[start : start + len(block)] = self._scores(block)
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
            meta = json.loads((Path(folder) / CONFIG).read_text())
        except (OSError, ValueError, RecursionError) as e:
            raise SashieError(f"no readable filter in {folder} ({e})") from None
        weights = meta.get("weights", "") if isinstance(meta, dict) else None
        if not isinstance(weights, str) or Path(weights).name != weights or weights in ("", "."):
            raise SashieError(f"no readable filter in {folder} (malformed {CONFIG})")
        return meta

    @classmethod
    def load(cls, folder: Path) -> KeepFilter:
        """Read a saved filter: JSON and weight files only, nothing executed."""
        folder = Path(folder)
        meta = cls.read_meta(folder)
        learner, weights = meta.get("learner"), folder / meta.get("weights", "")
        model: Any
        if learner in ("random_forest", "svm", "mlp"):
            model, _ = read_tensors(weights)
        elif learner in ("xgboost", "lightgbm"):
            try:
                if learner == "xgboost":
                    import xgboost

                    model = xgboost.XGBClassifier()
                    model.load_model(weights)
                else:
                    import lightgbm

                    model = lightgbm.Booster(model_file=str(weights))
            except ImportError:
                raise
            except Exception as e:  # each library raises its own errors
                raise Damaged(str(weights), f"not a {learner} model: {type(e).__name__}") from None
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
        return {
            "support": m.support_vectors_.astype(np.float32),
            "dual_coef": m.dual_coef_[0].astype(np.float32),
            "intercept": np.asarray(m.intercept_, np.float32),
        }
    if f.learner == "mlp":
        arrays = {}
        for i, (w, b) in enumerate(zip(m.coefs_, m.intercepts_)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
        return arrays
    # random forest: every tree's nodes laid end to end (children numbered within the tree)
    keep_class = list(m.classes_).index(1)
    parts: dict[str, list] = {"left": [], "right": [], "feature": [], "threshold": [], "keep": []}
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
    return {
        "left": arrays["left"].astype(np.int32),
        "right": arrays["right"].astype(np.int32),
        "feature": arrays["feature"].astype(np.int32),
        "threshold": arrays["threshold"].astype(np.float64),
        "keep": arrays["keep"].astype(np.float64),
        "tree_sizes": np.array(sizes, np.int64),
    }


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
        tree.__setstate__(
            {
                "max_depth": size,
                "node_count": size,
                "nodes": nodes,
                "values": np.stack([1 - keep, keep], 1)[:, None, :].copy(),
            }
        )
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
        squared = (x * x).sum(1)[:, None] + (support * support).sum(1)[None, :] - 2 * x @ support.T
        kernel = np.exp(-params["gamma"] * np.maximum(squared, 0))
    return _sigmoid(kernel @ m["dual_coef"] + m["intercept"][0])


def _mlp_scores(m: dict, params: dict, x: np.ndarray) -> np.ndarray:
    activations: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "relu": lambda a: np.maximum(a, 0),
        "tanh": np.tanh,
        "logistic": _sigmoid,
        "identity": lambda a: a,
    }
    act = activations[params["activation"]]
    h = x
    for i in range(params["layers"]):
        h = h @ m[f"w{i}"] + m[f"b{i}"]
        if i < params["layers"] - 1:
            h = act(h)
    return _sigmoid(h[:, 0])

"""An isolation forest (scikit-learn's) reduced to plain arrays, so that scoring one window is a few dozen
comparisons in Python instead of a scikit-learn call, and the fitted model serialises as JSON."""

from __future__ import annotations

import math
from array import array
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest


def _average_path(n: float) -> float:
    """c(n): the average path length of an unsuccessful search in a binary search tree of n points."""
    if n <= 1:
        return 0.0
    if n == 2:
        return 1.0
    return 2.0 * (math.log(n - 1) + 0.5772156649) - 2.0 * (n - 1) / n


class IsolationModel:
    """Scores vectors in [0, 1] (0.5 is unremarkable, near 1 is isolated quickly: anomalous)."""

    def __init__(self, trees: list[dict[str, array]], sample_size: int, threshold: float,
                 upper: list[float]) -> None:
        self.trees = trees
        self.sample_size = sample_size
        self.threshold = threshold  # scores above this are unusual: above 99.5% of the training vectors
        self.upper = upper  # the largest value of each feature in training
        self._norm = _average_path(sample_size)

    def excess(self, x: list[float]) -> float:
        """How far the vector goes beyond the largest training value of any feature (an isolation score
        saturates there: a point ten times past the range isolates no faster than one just past it)."""
        return max(v - u for v, u in zip(x, self.upper, strict=True))

    @classmethod
    def fit(cls, data: np.ndarray, seed: int, trees: int = 25, sample_size: int = 128,
            quantile: float = 0.995) -> IsolationModel:
        sample_size = min(sample_size, len(data))
        forest = IsolationForest(n_estimators=trees, max_samples=sample_size, random_state=seed).fit(data)
        extracted = []
        for estimator, features in zip(forest.estimators_, forest.estimators_features_, strict=True):
            tree = estimator.tree_
            extracted.append({
                "left": array("i", tree.children_left), "right": array("i", tree.children_right),
                "feature": array("i", [int(features[f]) if f >= 0 else -1 for f in tree.feature]),
                "threshold": array("d", tree.threshold), "size": array("i", tree.n_node_samples),
            })
        model = cls(extracted, sample_size, 1.0, [float(v) for v in data.max(axis=0)])
        model.threshold = float(np.quantile([model.score(row) for row in data.tolist()], quantile))
        return model

    def score(self, x: list[float]) -> float:
        depth_sum = 0.0
        for tree in self.trees:
            node, depth = 0, 0
            left, right, feature, threshold = tree["left"], tree["right"], tree["feature"], tree["threshold"]
            while left[node] != -1:
                node = left[node] if x[feature[node]] <= threshold[node] else right[node]
                depth += 1
            depth_sum += depth + _average_path(tree["size"][node])
        return 2.0 ** (-(depth_sum / len(self.trees)) / self._norm)

    def to_state(self) -> dict[str, Any]:
        return {"sample_size": self.sample_size, "threshold": self.threshold, "upper": self.upper,
                "trees": [{k: list(v) for k, v in t.items()} for t in self.trees]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IsolationModel:
        kinds = {"left": "i", "right": "i", "feature": "i", "threshold": "d", "size": "i"}
        trees = [{k: array(kinds[k], v) for k, v in t.items()} for t in state["trees"]]
        return cls(trees, int(state["sample_size"]), float(state["threshold"]),
                   [float(v) for v in state["upper"]])

"""The image-tuning bench's measure (sashie/eval/bench_image_tuning.py)."""

import numpy as np

from sashie.eval.bench_image_tuning import average_precision_at


def test_average_precision_at_k():
    # hits at ranks 1 and 3 of 3 relevant: (1/1 + 2/3) / 3
    assert abs(average_precision_at(np.array([1, 0, 1, 0]), 3) - (1 + 2 / 3) / 3) < 1e-9
    assert average_precision_at(np.array([0, 0]), 0) == 0.0
    # only the first k ranks count, over min(total, k) relevant items
    assert average_precision_at(np.array([0, 1, 1]), 5, k=2) == 0.25

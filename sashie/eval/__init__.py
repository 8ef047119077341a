"""Measuring sashie: evaluation worlds with complete ground truth, and the experiments.

world/          synthetic book pages drawn by three artists, the vocabulary split, and
                world/train.py, the demo model's training script
truth.py        ground truth: what a library's item shows (one place for every figure)
metrics.py      precision at k, average precision
references.py   the reference pictures a user brings (Twemoji, never on the pages)
bench.py        `sashie bench`: text, image, multi-image and zero-shot quality
bench_adapt.py  `sashie bench --adapt`: the adaptation experiment
"""

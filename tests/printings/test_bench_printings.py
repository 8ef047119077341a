"""`sashie bench --printings --json`: the figures the issue names, for each kind."""

import json

import pytest

from sashie.eval.world.reprints import KINDS

from conftest import run_cli


@pytest.mark.slow
def test_the_printings_bench_gives_every_figure_by_kind(tmp_path):
    out = run_cli("bench", "--printings", "--blocks", "3", "--seed", "4", "--json",
                  "--keep", tmp_path)  # fmt: skip
    figures = json.loads(out.output.strip().splitlines()[-1])
    for kind in KINDS:
        for name in (f"printings_{kind}_", f"printings_clip_{kind}_"):
            for measure in ("precision", "recall"):
                value = figures[name + measure]
                assert value is None or 0 <= value <= 1
    asked = sum(figures[f"printings_{kind}_queries"] for kind in KINDS)
    assert asked >= 3 and figures["printings_items"] > asked
    found = [
        figures[f"printings_{kind}_recall"]
        for kind in KINDS
        if figures[f"printings_{kind}_queries"]
    ]
    assert sum(found) / len(found) > 0.5  # a reprint of one's own world is mostly found
    assert 0 <= figures["printings_nearmiss_rejected"] <= 1
    assert figures["printings_items_per_second"] > 0

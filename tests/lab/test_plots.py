"""The fan-out figure: two panels with labelled, logarithmic room-size axes, one line per measure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

from wslab.lab.plots import plot_fanout_cost


def test_plot_fanout_cost_draws_cost_and_percentiles_against_n() -> None:
    table = pd.DataFrame({"N": [10, 100, 1000], "per_delivery_us": [150.0, 30.0, 25.0],
                          "p50_ms": [2.0, 5.0, 900.0], "p99_ms": [5.0, 11.0, 3000.0]})
    fig = plot_fanout_cost(table, title="fan-out")
    try:
        left, right = fig.axes
        assert left.get_xscale() == right.get_xscale() == "log"
        assert "N" in left.get_xlabel() and "N" in right.get_xlabel()
        assert "delivery" in left.get_ylabel() and "ms" in right.get_ylabel()
        assert list(left.lines[0].get_ydata()) == [150.0, 30.0, 25.0]
        assert [line.get_label() for line in right.lines] == ["p50", "p99"]
        assert list(right.lines[1].get_ydata()) == [5.0, 11.0, 3000.0]
    finally:
        plt.close(fig)

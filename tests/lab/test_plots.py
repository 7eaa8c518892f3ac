"""The fan-out figure: two panels with labelled, logarithmic room-size axes, one line per measure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

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


def test_plot_flood_draws_sent_refused_accepted_and_the_bucket_bound() -> None:
    from wslab.lab.plots import plot_flood

    sent = [10.0, 10.1, 10.2, 10.3]
    ax = plot_flood(sent, [10.2, 10.3], [10.0, 10.1], closed_at=10.4, burst=2, rate=2)
    try:
        labels = [line.get_label() for line in ax.lines]
        assert labels[:3] == ["sent by the script", "refused (rate_limit events)", "accepted (acks)"]
        assert "ms" in ax.get_xlabel() and "messages" in ax.get_ylabel()
        assert ax.lines[0].get_xdata()[0] == 0.0  # counted from the first message
        assert list(ax.lines[0].get_ydata()) == [1, 2, 3, 4, 4]  # held until the close
        assert list(ax.lines[3].get_ydata()) == pytest.approx([2.0, 2 + 2 * 0.4])  # burst + rate x t
    finally:
        plt.close(ax.figure)


def test_plot_rtt_cdf_is_a_cumulative_distribution_on_a_log_axis() -> None:
    from wslab.lab.plots import plot_rtt_cdf

    ax = plot_rtt_cdf({"alice": [0.3, 0.1, 0.2, 40.0]}, timeout_ms=500)
    try:
        assert ax.get_xscale() == "log" and "ms" in ax.get_xlabel()
        assert list(ax.lines[0].get_xdata()) == [0.1, 0.2, 0.3, 40.0]
        assert list(ax.lines[0].get_ydata()) == [0.25, 0.5, 0.75, 1.0]
        assert ax.lines[1].get_label() == "timeout 500 ms"
    finally:
        plt.close(ax.figure)


def test_the_heartbeat_figures_draw_real_columns_with_labelled_axes() -> None:
    from types import SimpleNamespace

    from wslab.lab.plots import plot_detection_delays, plot_heartbeat_cycle, plot_heartbeat_lanes

    run = SimpleNamespace(pings=[20.0, 40.08], pongs=[20.08], last_pong=20.08, dead_at=50.08)
    fig = plot_heartbeat_cycle(run, dies_at=30.0, ping_interval=20.0, pong_timeout=10.0,
                               after_pong=[0.0, 10.0], found_after=[30.0, 20.0])
    try:
        top, bottom = fig.axes
        assert "seconds" in top.get_xlabel() and "(s)" in bottom.get_ylabel()
        assert list(bottom.lines[0].get_ydata()) == [30.0, 20.0]
    finally:
        plt.close(fig)

    log = pd.DataFrame({"connection_id": ["a", "a", "b", "b", "b"],
                        "kind": ["ping", "pong", "ping", "custom", "heartbeat_timeout"],
                        "t": [1.0, 1.1, 1.0, 2.0, 3.5]})
    detection = pd.DataFrame({"since last sign of life (s)": [2.5], "since the fault (s)": [1.5],
                              "fault": ["frozen"]}, index=pd.Index(["bea"]))
    ax = plot_heartbeat_lanes(log, {"al": "a", "bea": "b"}, detection)
    try:
        assert [t.get_text() for t in ax.get_yticklabels()] == ["al", "bea"]
        assert "seconds" in ax.get_xlabel()
    finally:
        plt.close(ax.figure)
    ax = plot_detection_delays(detection, bound=1.0, slack=0.1)
    try:
        assert [p.get_height() for p in ax.patches] == [2.5, 1.5]
        assert "(s)" in ax.get_ylabel()
    finally:
        plt.close(ax.figure)

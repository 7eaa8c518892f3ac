"""The drawing process's figures: only new samples sent, lines blitted over a laid-out background.

Drawn in this process (the renderer's child does the same with what the pipe brings). Counts
and pixels, never timings.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest
from PIL import Image

from wslab.lab.dashboard import Series
from wslab.lab.dashboard.panels import figure_spec
from wslab.lab.dashboard.render import Renderer, _Figures, encode_png, merge_specs, render_figure
from wslab.lab.dashboard.sampler import HubSeries
from wslab.lab.dashboard.sources import Reading, Source

pytest.importorskip("matplotlib")


class _Quiet(Source):
    label = "hub-test"


def _fed(ticks: int, *, start: int = 0, series: HubSeries | None = None,
         maxlen: int = 600) -> HubSeries:
    view = series or HubSeries(_Quiet(), maxlen=maxlen, rate_window=1.0, t0=0.0)
    for i in range(start, start + ticks):
        # A steady load with a little wobble, as a saturated hub shows it: rates of about 400
        # and 40,000 a second (the totals are what a reading has).
        total = i + 0.25 * math.cos(i / 5)
        view.record(Reading(time=i * 0.25 + 0.01, connections=101.0,
                            messages_in=total * 100.0, messages_out=total * 10_000.0,
                            queue_max=float(i % 7), queue_total=float(i % 70)))
    return view


def _shown(figures: _Figures, key: str = "0") -> dict[tuple[int, str], list[float]]:
    figure = figures.figures[key]
    shown = {}
    for index, handles in figure.lines.items():
        for handle in handles:
            shown[(index, handle.get_label())] = [float(v) for v in handle.get_ydata()]
    return shown


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=False))


def test_series_since_gives_only_the_new_samples() -> None:
    series = Series("x", maxlen=5)
    for i in range(3):
        series.append(float(i), float(i))
    assert series.since(0) == ([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], True)
    assert series.since(1) == ([1.0, 2.0], [1.0, 2.0], False)
    assert series.since(3) == ([], [], False)
    for i in range(3, 12):
        series.append(float(i), float(i))
    # More is new than is kept: every kept sample, marked as the whole series.
    assert series.since(3) == ([7.0, 8.0, 9.0, 10.0, 11.0], [7.0, 8.0, 9.0, 10.0, 11.0], True)


def test_lines_drawn_from_deltas_show_what_whole_specs_show() -> None:
    view = _fed(10, maxlen=50)
    cursor: dict[str, Any] = {}
    by_delta, whole = _Figures(), _Figures()
    sizes = []
    for step in range(12):
        spec = figure_spec(view, "hub", cursor)
        sizes.append(sum(len(line["t"]) for p in spec["panels"] for line in p.get("lines", [])))
        by_delta.draw("0", spec)
        whole.draw("0", figure_spec(view, "hub"))
        a, b = _shown(by_delta), _shown(whole)
        assert a.keys() == b.keys()
        assert all(_same(a[k], b[k]) for k in a), step
        _fed(7, start=10 + 7 * step, series=view)  # past maxlen: the oldest fall off
    assert max(sizes[1:]) <= 7 * 8  # a redraw carries the new samples of each line only


def test_a_waiting_delta_is_merged_not_lost() -> None:
    view = _fed(10)
    cursor: dict[str, Any] = {}
    first = figure_spec(view, "hub", cursor)
    _fed(4, start=10, series=view)
    second = figure_spec(view, "hub", cursor)
    merged = merge_specs(first, second)
    assert merged is not None
    figures = _Figures()
    figures.draw("0", merged)
    out = _shown(figures)[(1, "out")]
    assert _same(out, [float("nan") if v is None else v
                       for v in view.series["out_per_s"].points()[1]])
    assert merge_specs(first, {**second, "panels": second["panels"][:2]}) is None


def test_steady_data_is_blitted_and_laid_out_rarely() -> None:
    view = _fed(4)
    cursor: dict[str, Any] = {}
    figures = _Figures()
    for step in range(240):  # a minute of samples at 0.25 s
        figures.draw("0", figure_spec(view, "hub", cursor))
        _fed(1, start=4 + step, series=view)
    figure = figures.figures["0"]
    assert figure.layouts + figure.panel_layouts + figure.blits == 240
    # The whole figure once; a panel when its data leaves its limits, now and then.
    assert figure.layouts <= 2, (figure.layouts, figure.panel_layouts)
    assert figure.layouts + figure.panel_layouts <= 24, (figure.layouts, figure.panel_layouts)


def test_a_panel_laid_out_alone_looks_as_if_all_were() -> None:
    view = _fed(4)
    cursor: dict[str, Any] = {}
    figures = _Figures()
    compared = 0
    for step in range(120):
        figure = figures.figures.get("0")
        before = figure.panel_layouts if figure is not None else 0
        png = figures.draw("0", figure_spec(view, "hub", cursor))
        figure = figures.figures["0"]
        if figure.panel_layouts > before:
            figure.background = None  # the same data, drawn whole
            whole = figures.draw("0", figure_spec(view, "hub", cursor))
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))),
                                  np.asarray(Image.open(io.BytesIO(whole)))), step
            compared += 1
        _fed(1, start=4 + step, series=view)
    assert compared >= 3


def test_png_has_the_canvas_pixels() -> None:
    view = _fed(40)
    png = render_figure(figure_spec(view, "hub"))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "RGB" and image.size == (614, 307)
    rgba = np.zeros((3, 4, 4), dtype=np.uint8)
    rgba[..., 0] = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgba[..., 3] = 255
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(rgba))))
    assert np.array_equal(decoded, rgba[..., :3])


def test_a_spec_the_renderer_cannot_take_is_sent_whole_next_time() -> None:
    lost: list[str] = []
    renderer = Renderer(lambda key, png: None, on_lost=lost.append)  # not started: no process
    renderer.submit("0", figure_spec(_fed(3), "hub", {}))
    assert lost == ["0"]

"""Figures of mirkd.plots on hand-made data, and the Snakemake report of the tiny run."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.image import imread

from mirkd.evaluation import CONFUSION_LABELS, METRICS, QUALITY_GROUPS
from mirkd.history import EpochRecord
from mirkd.labels import ChordSegment
from mirkd.plots import (
    MODEL_COLORS,
    confusion_figure,
    quality_recall_figure,
    quality_series,
    row_normalised,
    save_figure,
    scores_table_html,
    timeline_figure,
    training_curves_figure,
)

from workflow_helpers import snakemake

MODELS = ("teacher", "stage1", "stage2", "baseline")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _same_color(a, b) -> bool:
    return np.allclose(to_rgba(a), to_rgba(b))


def _recall_data() -> tuple[dict, dict]:
    recall = {m: {q: 0.1 * (i + 1) for q in QUALITY_GROUPS} for i, m in enumerate(MODELS)}
    for m in MODELS:
        recall[m]["aug"] = None
    share = dict.fromkeys(QUALITY_GROUPS, 1 / (len(QUALITY_GROUPS) - 1))
    share["aug"] = 0.0
    return recall, share


def test_row_normalised_rows_sum_to_one_and_empty_rows_are_nan() -> None:
    matrix = row_normalised([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 2.0]])
    np.testing.assert_allclose(matrix[0], [0.75, 0.25, 0.0])
    assert np.isnan(matrix[1]).all()
    np.testing.assert_allclose(matrix[2], [0.0, 0.5, 0.5])


def test_quality_recall_has_one_bar_per_model_and_quality_with_shares() -> None:
    recall, share = _recall_data()
    ax = quality_recall_figure(recall, share).axes[0]
    assert [c.get_label() for c in ax.containers] == [
        "teacher",
        "stage 1",
        "stage 2 (KD)",
        "baseline",
    ]
    for container, model, expected in zip(ax.containers, MODELS, (10, 20, 30, 40), strict=True):
        heights = [bar.get_height() for bar in container]
        assert len(heights) == len(QUALITY_GROUPS)
        aug = QUALITY_GROUPS.index("aug")
        assert np.isnan(heights[aug])
        np.testing.assert_allclose(np.delete(heights, aug), expected)
        assert all(_same_color(bar.get_facecolor(), MODEL_COLORS[model]) for bar in container)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == f"maj\n{100 / 14:.1f}%"
    assert labels[QUALITY_GROUPS.index("aug")] == "aug\nabsent"


def test_quality_figure_stacks_precision_below_recall_in_the_same_order_and_colours() -> None:
    recall, share = _recall_data()
    precision = {m: {q: 0.05 * (i + 1) for q in QUALITY_GROUPS} for i, m in enumerate(MODELS)}
    precision["stage2"]["dim"] = None  # never called: no bar, a "–" marker
    precision["baseline"]["sus2"] = 0.0  # called but never right: a "0" marker
    fig = quality_recall_figure(recall, share, precision=precision)
    top, below = fig.axes
    assert [c.get_label() for c in below.containers] == [c.get_label() for c in top.containers]
    for container, model, expected in zip(below.containers, MODELS, (5, 10, 15, 20), strict=True):
        heights = np.array([bar.get_height() for bar in container])
        assert len(heights) == len(QUALITY_GROUPS)
        assert all(_same_color(bar.get_facecolor(), MODEL_COLORS[model]) for bar in container)
        if model == "stage2":
            assert np.isnan(heights[QUALITY_GROUPS.index("dim")])
            heights = np.delete(heights, QUALITY_GROUPS.index("dim"))
        if model == "baseline":
            assert heights[QUALITY_GROUPS.index("sus2")] == 0
            heights = np.delete(heights, QUALITY_GROUPS.index("sus2"))
        np.testing.assert_allclose(heights, expected)
    marks = [(t.get_text(), t.get_color()) for t in below.texts]
    assert [m for m, _ in marks] == ["–", "0"]
    assert _same_color(marks[0][1], MODEL_COLORS["stage2"])
    assert _same_color(marks[1][1], MODEL_COLORS["baseline"])
    assert below.get_xlim() == top.get_xlim()
    labels = [t.get_text() for t in below.get_xticklabels()]
    assert labels[QUALITY_GROUPS.index("aug")] == "aug\nabsent"
    assert "precision" in below.get_ylabel()


def _metrics(model_index: int, with_precision: bool) -> dict:
    groups = {}
    for q in QUALITY_GROUPS:
        group = {"seconds": 1.0, "share": 1 / len(QUALITY_GROUPS), "recall": 0.1 * model_index}
        if with_precision:
            group |= {"est_seconds": 1.0, "precision": None if q == "aug" else 0.5}
        groups[q] = group
    return {"quality": {"groups": groups}}


@pytest.mark.parametrize("with_precision", [True, False], ids=["precision", "older-metrics"])
def test_quality_figure_from_metrics_with_and_without_precision(
    tmp_path: Path, with_precision: bool
) -> None:
    scores = {m: _metrics(i + 1, with_precision) for i, m in enumerate(MODELS)}
    recall, share, precision = quality_series(
        {m: s["quality"]["groups"] for m, s in scores.items()}
    )
    assert recall["stage1"]["maj"] == pytest.approx(0.2)
    assert share["maj"] == pytest.approx(1 / len(QUALITY_GROUPS))
    expected = 0.5 if with_precision else None
    assert precision["stage2"]["maj"] == expected and precision["stage2"]["aug"] is None
    fig = quality_recall_figure(recall, share, precision=precision)
    below = fig.axes[1]
    heights = [bar.get_height() for c in below.containers for bar in c]
    assert np.isnan(heights).sum() == (len(MODELS) if with_precision else len(heights))
    if not with_precision:
        assert [t.get_text() for t in below.texts] == ["no precision in these metrics files"]
    out = tmp_path / "quality_recall.png"
    save_figure(fig, out)
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert _not_blank(out)


def test_every_figure_colours_a_model_the_same_way() -> None:
    rows = [EpochRecord(e, 1 / e, e / 10, 1e-3, 1.0) for e in (1, 2, 3)]
    curves = training_curves_figure({m: rows for m in MODELS[1:]}, {"stage1": "agreement"})
    for ax in curves.axes:
        colors = [line.get_color() for line in ax.get_lines()]
        assert [to_rgba(c) for c in colors] == [to_rgba(MODEL_COLORS[m]) for m in MODELS[1:]]
    assert curves.axes[1].get_legend().get_texts()[0].get_text() == "stage 1 (agreement)"
    confusion = confusion_figure(CONFUSION_LABELS, np.eye(len(CONFUSION_LABELS)), "stage2")
    assert _same_color(confusion.axes[0].title.get_color(), MODEL_COLORS["stage2"])
    reference = [ChordSegment(0, 4, "C")]
    timeline = timeline_figure(reference, {m: reference for m in MODELS}, "song")
    ticks = {t.get_text(): t.get_color() for t in timeline.axes[0].get_yticklabels()}
    assert _same_color(ticks["stage 2 (KD)"], MODEL_COLORS["stage2"])
    assert _same_color(ticks["baseline"], MODEL_COLORS["baseline"])


def _segments(*rows: tuple[float, float, str]) -> list[ChordSegment]:
    return [ChordSegment(*row) for row in rows]


def _hatched_spans(fig) -> list[tuple[float, float]]:
    spans = []
    for collection in fig.axes[0].collections:
        if collection.get_hatch():
            xs = collection.get_paths()[0].vertices[:, 0]
            spans.append((round(float(xs.min()), 6), round(float(xs.max()), 6)))
    return sorted(spans)


def test_timeline_hatches_exactly_where_an_estimate_differs_from_the_reference() -> None:
    reference = _segments((0, 2, "N"), (2, 6, "A:min"), (6, 10, "G:7/b7"))
    estimates = {
        "stage2": _segments((0, 2, "N"), (2, 7, "A:min"), (7, 10, "G:7")),
        "baseline": _segments((0, 10, "C")),
    }
    fig = timeline_figure(reference, estimates, "song", max_seconds=8)
    assert fig.axes[0].get_xlim() == (0, 8)
    # stage 2: A:min over G:7 from 6 to 7 (G:7 equals G:7/b7 in the vocabulary);
    # baseline: C everywhere is wrong, clipped at 8 s.
    assert _hatched_spans(fig) == [(0, 2), (2, 6), (6, 7), (6, 8)]


def test_scores_table_html_has_every_model_and_metric_and_bolds_the_best() -> None:
    means = {m: dict.fromkeys(METRICS, 0.5) for m in MODELS}
    means["stage2"]["majmin"] = 0.8
    means["baseline"]["root"] = None
    page = scores_table_html(means, n_songs=6)
    assert all(f"<th>{metric}</th>" in page for metric in METRICS)
    assert all(f">{label}</th>" in page for label in ("teacher", "stage 1", "baseline"))
    assert "<b>80.0</b>" in page and "<td>–</td>" in page and "6 songs" in page


def test_save_figure_writes_a_png_and_leaves_no_temp_file(tmp_path: Path) -> None:
    recall, share = _recall_data()
    out = tmp_path / "plots" / "quality.png"
    save_figure(quality_recall_figure(recall, share), out)
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in out.parent.iterdir()] == ["quality.png"]


FIGURES = (
    "scores_table.png",
    "quality_recall.png",
    "training_curves.png",
    *(f"confusion_{m}.png" for m in MODELS),
)
DATA_URI = re.compile(r"data:([\w/+.-]+);charset=[\w-]+;filename=([^;]+);base64,([A-Za-z0-9+/=]+)")


@pytest.fixture(scope="module")
def report(finished_tiny_run: Path) -> tuple[str, dict[str, tuple[str, bytes]]]:
    """The report HTML of the tiny run and its embedded files {name: (mime, bytes)}."""
    start = time.monotonic()
    result = snakemake(finished_tiny_run, "--report", "results/report.html")
    assert result.returncode == 0, result.stderr[-4000:]
    print(f"report rendered in {time.monotonic() - start:.1f} s")
    page = (finished_tiny_run / "results/report.html").read_text()
    embedded = {name: (mime, base64.b64decode(data)) for mime, name, data in DATA_URI.findall(page)}
    return page, embedded


def _not_blank(png: Path) -> bool:
    """More than 2% of the pixels are not white."""
    pixels = imread(png)[..., :3]
    return float((pixels < 0.95).any(axis=-1).mean()) > 0.02


@pytest.mark.slow
def test_run_draws_every_figure(finished_tiny_run: Path) -> None:
    plots = finished_tiny_run / "results/plots"
    timelines = sorted(plots.glob("timeline_*.png"))
    assert len(timelines) == 2  # the tiny run has two test songs (at most three are drawn)
    for png in [plots / name for name in FIGURES] + timelines:
        assert png.read_bytes().startswith(PNG_MAGIC), png
        assert _not_blank(png), png


@pytest.mark.slow
def test_report_is_one_file_with_the_table_and_every_figure(
    finished_tiny_run: Path, report: tuple[str, dict[str, tuple[str, bytes]]]
) -> None:
    page, embedded = report
    plots = finished_tiny_run / "results/plots"
    for png in [plots / name for name in FIGURES] + sorted(plots.glob("timeline_*.png")):
        assert embedded[png.name] == ("image/png", png.read_bytes()), png.name
    mime, table = embedded["scores_table.html"]
    assert mime == "text/html"
    table = table.decode()
    assert all(f"<th>{metric}</th>" in table for metric in METRICS)
    assert all(
        f">{label}</th>" in table for label in ("teacher", "stage 1", "stage 2 (KD)", "baseline")
    )
    assert re.search(r"<td>(<b>)?\d+\.\d</", table)
    assert "share of the scored" in page  # a caption from report/
    assert not re.search(r"(src|href)=\"(?!data:|#)[^\"]+\.(png|html)\"", page)

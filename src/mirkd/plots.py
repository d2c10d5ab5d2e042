"""Figures of a finished run: scores table, per-quality recall, confusion, training, timelines.

Figure functions take plain data (dicts, lists) and return a matplotlib Figure drawn with the
Agg canvas (no display, no pyplot state). ``write_figures`` reads the run's files, draws every
figure and saves each PNG atomically. Every figure colours a model with ``MODEL_COLORS``
(Okabe-Ito, colour-blind safe), so a model looks the same in the paper's figures.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mirkd.atomic import atomic_path, atomic_write_text
from mirkd.errors import LabFormatError
from mirkd.evaluation import METRICS, QUALITY_GROUPS
from mirkd.history import EpochRecord, read_history
from mirkd.labels import ChordSegment, read_annotation
from mirkd.manifest import find_annotation
from mirkd.scores import ModelScores, read_scores
from mirkd.stages import BASELINE, STAGE1, STAGE2, TEACHER
from mirkd.vocab import LARGE

MODEL_COLORS = {
    TEACHER: "#7F7F7F",
    STAGE1: "#56B4E9",
    STAGE2: "#D55E00",
    BASELINE: "#009E73",
}
MODEL_LABELS = {
    TEACHER: "teacher",
    STAGE1: "stage 1",
    STAGE2: "stage 2 (KD)",
    BASELINE: "baseline",
}
UNLABELED_MODELS = (TEACHER, STAGE1)  # trained without labels: the same at every budget
REFERENCE_COLOR = "#222222"
FALLBACK_COLORS = ("#E69F00", "#0072B2", "#CC79A7", "#F0E442")
DPI = 200


def model_color(model: str) -> str:
    """The model's colour in every figure (unknown models get a stable spare colour)."""
    if model in MODEL_COLORS:
        return MODEL_COLORS[model]
    return FALLBACK_COLORS[sum(map(ord, model)) % len(FALLBACK_COLORS)]


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _best_per_metric(means: Mapping[str, Mapping[str, float | None]]) -> dict[str, float]:
    best = {}
    for metric in METRICS:
        values = [v for m in means.values() if (v := m.get(metric)) is not None]
        if values:
            best[metric] = max(values)
    return best


def scores_table_figure(means: Mapping[str, Mapping[str, float | None]]) -> Figure:
    """The seven mir_eval scores (%) per model as a table; the best of each column in bold."""
    models = list(means)
    best = _best_per_metric(means)
    fig = _figure(1.6 + 0.95 * len(METRICS), 0.6 + 0.38 * (len(models) + 1))
    ax = fig.add_subplot()
    ax.set_axis_off()
    cells = [[_percent(means[m].get(metric)) for metric in METRICS] for m in models]
    table = ax.table(
        cellText=cells,
        rowLabels=[model_label(m) for m in models],
        colLabels=list(METRICS),
        loc="center",
        cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(10)
    table.scale(1.0, 1.5)
    for row, model in enumerate(models, start=1):
        label = table[row, -1]
        label.get_text().set_color(model_color(model))
        label.get_text().set_fontweight("bold")
        for col, metric in enumerate(METRICS):
            value = means[model].get(metric)
            if value is not None and value == best.get(metric):
                table[row, col].get_text().set_fontweight("bold")
    ax.set_title("Weighted chord symbol recall (%) on the test split", fontsize=11)
    return fig


def scores_table_html(means: Mapping[str, Mapping[str, float | None]], n_songs: int) -> str:
    """The same table as a standalone HTML page (shown inline by the Snakemake report)."""
    best = _best_per_metric(means)
    head = "".join(f"<th>{html.escape(m)}</th>" for m in METRICS)
    rows = []
    for model, scores in means.items():
        cells = []
        for metric in METRICS:
            value = scores.get(metric)
            text = _percent(value)
            bold = value is not None and value == best.get(metric)
            cells.append(f"<td>{'<b>' + text + '</b>' if bold else text}</td>")
        name = html.escape(model_label(model))
        rows.append(f'<tr><th style="color:{model_color(model)}">{name}</th>{"".join(cells)}</tr>')
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>mirkd scores</title>'
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "th,td{padding:4px 10px;border-bottom:1px solid #ccc;text-align:right}"
        "th:first-child{text-align:left}</style></head><body>\n"
        f"<p>Weighted chord symbol recall (%) on the test split ({n_songs} songs, "
        "song-duration weighted, mir_eval on the raw references). Best per column in bold.</p>\n"
        f'<table id="scores"><tr><th>model</th>{head}</tr>\n'
        + "\n".join(rows)
        + "\n</table>\n</body></html>\n"
    )


def _quality_bars(
    ax: Axes,
    values: Mapping[str, Mapping[str, float | None]],
    models: Sequence[str],
    qualities: Sequence[str],
    none_marker: str | None,
) -> None:
    """One bar (%) per model and quality on ``ax``; a measured zero is written "0" and a None
    is no bar, marked ``none_marker`` when given."""
    x = np.arange(len(qualities))
    width = 0.8 / max(1, len(models))
    for i, model in enumerate(models):
        row = [values.get(model, {}).get(q) for q in qualities]
        heights = [100 * v if v is not None else np.nan for v in row]
        centres = x - 0.4 + width * (i + 0.5)
        ax.bar(
            centres,
            heights,
            width,
            color=model_color(model),
            label=model_label(model),
            edgecolor="white",
            linewidth=0.4,
        )
        for centre, value in zip(centres, row, strict=True):
            if value == 0:  # a measured zero, unlike an absent quality
                mark = "0"
            elif value is None and none_marker is not None:
                mark = none_marker
            else:
                continue
            ax.text(
                centre,
                0.5,
                mark,
                ha="center",
                va="bottom",
                fontsize=7 if mark == "0" else 9,
                color=model_color(model),
                fontweight="bold",
            )
    ax.set_xlim(-0.6, len(qualities) - 0.4)
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def quality_recall_figure(
    recall: Mapping[str, Mapping[str, float | None]],
    share: Mapping[str, float],
    qualities: Sequence[str] = QUALITY_GROUPS,
    precision: Mapping[str, Mapping[str, float | None]] | None = None,
) -> Figure:
    """Grouped bars of per-quality recall (and precision below), one bar per model.

    ``recall`` = {model: {quality: recall or None}}; ``share`` = {quality: share of test time}.
    Qualities absent from the test set are labelled "absent" and get no recall bars; a value of
    exactly zero is written as a small "0" so it does not look like a missing bar. With
    ``precision`` = {model: {quality: precision or None}} a second panel below shows precision
    in the same quality order and colours; a None precision (the model never calls the
    quality, or an older metrics file without precision) is no bar and a small "–".
    """
    models = list(recall)
    width = max(8.0, 0.75 * len(qualities))
    fig = _figure(width, 4.2 if precision is None else 7.2)
    if precision is None:
        ax = fig.add_subplot()
        axes = [ax]
    else:
        ax, below = fig.subplots(2, 1, sharex=True)
        axes = [ax, below]
    _quality_bars(ax, recall, models, qualities, none_marker=None)
    labels = [
        f"{q}\n{100 * share.get(q, 0.0):.1f}%" if share.get(q, 0.0) > 0 else f"{q}\nabsent"
        for q in qualities
    ]
    ax.set_xticks(np.arange(len(qualities)), labels, fontsize=9)
    ax.set_ylabel("recall (%)  [same root and quality]")
    ax.legend(
        ncols=len(models), loc="upper right", fontsize=9, frameon=False, bbox_to_anchor=(1.0, 1.12)
    )
    if precision is None:
        ax.set_title("Per-quality recall on the test split", loc="left", fontsize=11)
    else:
        ax.set_title("Per-quality recall and precision on the test split", loc="left", fontsize=11)
        ax.tick_params(labelbottom=False)
        measured = any(v is not None for row in precision.values() for v in row.values())
        _quality_bars(below, precision, models, qualities, none_marker="–" if measured else None)
        if not measured:
            below.text(
                0.5,
                0.5,
                "no precision in these metrics files",
                transform=below.transAxes,
                ha="center",
                va="center",
                fontsize=9,
                color="#555555",
            )
        below.set_ylabel("precision (%)  [same root and quality]")
        below.set_title(
            "precision: share of the model's time on a quality that is right"
            "  (– = never predicted)",
            loc="left",
            fontsize=9,
        )
    axes[-1].set_xlabel("chord quality  /  share of test time")
    return fig


def row_normalised(seconds: Sequence[Sequence[float]]) -> np.ndarray:
    """Each row divided by its sum (rows without reference time become NaN)."""
    matrix = np.asarray(seconds, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, matrix / np.where(totals > 0, totals, 1.0), np.nan)


def confusion_figure(
    labels: Sequence[str], seconds: Sequence[Sequence[float]], model: str
) -> Figure:
    """Row-normalised quality confusion (rows reference, columns estimate), cells in %.

    Row labels carry the reference seconds; rows with no reference time are left blank.
    """
    matrix = row_normalised(seconds)
    totals = np.asarray(seconds, dtype=float).sum(axis=1)
    n = len(labels)
    fig = _figure(7.2, 6.4)
    ax = fig.add_subplot()
    image = ax.imshow(100 * matrix, cmap="Blues", vmin=0, vmax=100)
    ax.set_facecolor("#EEEEEE")
    for i in range(n):
        for j in range(n):
            value = matrix[i, j]
            if np.isfinite(value) and value >= 0.005:
                ax.text(
                    j,
                    i,
                    f"{100 * value:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > 0.6 else "black",
                )
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
    ax.set_yticks(
        range(n), [f"{q} ({t:.0f} s)" for q, t in zip(labels, totals, strict=True)], fontsize=8
    )
    ax.set_xlabel("estimated quality")
    ax.set_ylabel("reference quality (seconds of test audio)")
    ax.set_title(
        f"Quality confusion, {model_label(model)} (% of each row)",
        color=model_color(model),
        fontsize=11,
    )
    fig.colorbar(image, ax=ax, shrink=0.8, label="% of reference time")
    return fig


def training_curves_figure(
    histories: Mapping[str, Sequence[EpochRecord]],
    val_metrics: Mapping[str, str] | None = None,
) -> Figure:
    """Training loss and validation score (0..1) per epoch, one line per model.

    ``histories`` = {model: its epochs}; ``val_metrics`` names
    each model's validation score in the legend (stage 1 validates on teacher agreement).
    """
    val_metrics = val_metrics or {}
    fig = _figure(10.0, 3.8)
    loss_ax, val_ax = fig.subplots(1, 2)
    for i, (model, rows) in enumerate(histories.items()):
        epochs = [r.epoch for r in rows]
        under = len(histories) - 1 - i  # earlier lines wider, so equal curves stay visible
        style = dict(
            color=model_color(model),
            marker="o",
            markersize=3 + 2 * under,
            linewidth=1.4 + 1.2 * under,
        )
        loss_ax.plot(epochs, [r.train_loss for r in rows], label=model_label(model), **style)
        metric = val_metrics.get(model)
        label = model_label(model) + (f" ({metric})" if metric else "")
        val_ax.plot(epochs, [r.val_score for r in rows], label=label, **style)
    loss_ax.set_title("training loss", fontsize=11)
    loss_ax.set_ylabel("loss")
    val_ax.set_title("validation score (higher is better)", fontsize=11)
    val_ax.set_ylabel("score")
    val_ax.set_ylim(-0.02, 1.02)
    for ax in (loss_ax, val_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
        ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def _disagreement(
    segment: ChordSegment, reference: Sequence[ChordSegment]
) -> list[tuple[float, float]]:
    """Parts of `segment` whose chord (in the 170-class vocabulary) differs from the reference."""
    wrong = []
    mine = LARGE.to_index(segment.label)
    for ref in reference:
        start, end = max(segment.start, ref.start), min(segment.end, ref.end)
        if end > start and LARGE.to_index(ref.label) != mine:
            wrong.append((start, end))
    return wrong


def timeline_figure(
    reference: Sequence[ChordSegment],
    estimates: Mapping[str, Sequence[ChordSegment]],
    title: str,
    max_seconds: float = 30.0,
) -> Figure:
    """Reference and each model's chords on one time axis (the first `max_seconds`).

    Each model's row is drawn in its colour; where its chord differs from the reference
    (root and quality, 170-class vocabulary) the bar is hatched and pale. Chord names are
    written in segments wide enough to hold them.
    """
    rows = [("reference", reference, REFERENCE_COLOR)] + [
        (model_label(m), segs, model_color(m)) for m, segs in estimates.items()
    ]
    end = min(max_seconds, max((s.end for s in reference), default=max_seconds))
    fig = _figure(12.0, 0.9 + 0.55 * len(rows))
    ax = fig.add_subplot()
    min_text_width = end / 40
    for row, (_, segments, color) in enumerate(rows):
        y = len(rows) - 1 - row
        for seg in segments:
            if seg.start >= end:
                continue
            stop = min(seg.end, end)
            ax.broken_barh(
                [(seg.start, stop - seg.start)],
                (y - 0.38, 0.76),
                facecolors=color,
                edgecolor="white",
                linewidth=1.0,
            )
            if row > 0:
                for a, b in _disagreement(seg, reference):
                    b = min(b, end)
                    if b > a:
                        ax.broken_barh(
                            [(a, b - a)],
                            (y - 0.38, 0.76),
                            facecolors="white",
                            alpha=0.65,
                            hatch="///",
                            edgecolor=color,
                            linewidth=0,
                        )
            if stop - seg.start >= min_text_width:
                ax.text(
                    (seg.start + stop) / 2,
                    y,
                    seg.label,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if row > 0 else "white",
                    clip_on=True,
                )
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)], fontsize=9)
    for tick, (_, _, color) in zip(ax.get_yticklabels(), reversed(rows), strict=True):
        tick.set_color(color)
        tick.set_fontweight("bold")
    ax.set_xlim(0, end)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("time (s)")
    ax.set_title(
        f"{title}: chords over time (hatched = differs from the reference)", loc="left", fontsize=10
    )
    return fig


def label_efficiency_figure(points: Sequence[Mapping[str, Any]]) -> Figure:
    """7-metric mean (%) against the labeled budget, one line per model and decoding.

    ``points`` = [{"model", "budget", "decoding": "argmax"|"viterbi", "mean7", "ci95"}];
    error bars are the 95 % song-level bootstrap intervals. Models trained without labels
    (teacher, stage 1) are the same at every budget and are drawn as horizontal bands.
    """
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    budgets = sorted({p["budget"] for p in points})
    for model in (*UNLABELED_MODELS, BASELINE, STAGE2):
        for decoding, style in (("argmax", "-"), ("viterbi", "--")):
            series = sorted(
                (
                    p
                    for p in points
                    if p["model"] == model and p["decoding"] == decoding and p["mean7"] is not None
                ),
                key=lambda p: p["budget"],
            )
            if not series:
                continue
            label = f"{model_label(model)}{' (Viterbi)' if decoding == 'viterbi' else ''}"
            if model in UNLABELED_MODELS:
                point = series[0]
                ax.axhline(
                    100 * point["mean7"],
                    color=model_color(model),
                    linestyle=style,
                    linewidth=1.2,
                    label=label,
                )
                if point["ci95"]:
                    ax.axhspan(
                        100 * point["ci95"][0],
                        100 * point["ci95"][1],
                        color=model_color(model),
                        alpha=0.08,
                    )
                continue
            x = [p["budget"] for p in series]
            y = [100 * p["mean7"] for p in series]
            err = np.array(
                [
                    [y_ - 100 * p["ci95"][0], 100 * p["ci95"][1] - y_] if p["ci95"] else [0, 0]
                    for y_, p in zip(y, series, strict=True)
                ]
            ).T
            ax.errorbar(
                x,
                y,
                yerr=err,
                color=model_color(model),
                linestyle=style,
                marker="o",
                markersize=4,
                capsize=3,
                linewidth=1.4,
                label=label,
            )
    if budgets:
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.minorticks_off()
    ax.set_xlabel("labeled training songs (budget)")
    ax.set_ylabel("7-metric mean (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.set_title("Label efficiency on the test split", loc="left", fontsize=11)
    return fig


def label_efficiency_points(
    rows: Sequence[Mapping[str, Any]], scores: Mapping[str, ModelScores]
) -> list[dict[str, Any]]:
    """Points of the label-efficiency figure from the run plan's result rows: the base run
    and the variants that differ from it by their labeled budget only."""
    points = []
    for row in rows:
        if not row["budget_only"]:
            continue
        for decoding, m in scores[row["metrics"]].decodings().items():
            points.append(
                {
                    "model": row["model"],
                    "budget": row["budget"],
                    "decoding": decoding,
                    "mean7": m.mean7,
                    "ci95": m.interval("mean7"),
                }
            )
    return points


def quality_series(
    groups: Mapping[str, Mapping[str, Mapping[str, float | None]]],
) -> tuple[
    dict[str, dict[str, float | None]], dict[str, float], dict[str, dict[str, float | None]]
]:
    """(recall, share, precision) of ``quality_recall_figure`` from {model: its per-quality
    groups} (`ModelScores.groups`).

    The share of test time is the first model's (the same reference for all). Older metrics
    files without a per-quality "precision" give None there (drawn as no bar).
    """
    share = {q: g["share"] or 0.0 for q, g in next(iter(groups.values())).items()} if groups else {}
    recall = {m: {q: g["recall"] for q, g in gs.items()} for m, gs in groups.items()}
    precision = {m: {q: g.get("precision") for q, g in gs.items()} for m, gs in groups.items()}
    return recall, share, precision


def save_figure(fig: Figure, out: str | Path) -> None:
    """Write the figure as PNG atomically (temp file in the same folder, then rename)."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", facecolor="white")


def write_figures(
    metrics: Mapping[str, str],
    histories: Mapping[str, str],
    predictions: Mapping[str, str],
    timelines: Sequence[tuple[str, str]],
    out_table_html: str,
    out_table_png: str,
    out_quality: str,
    out_confusion: Sequence[str],
    out_training: str,
    out_timelines: Sequence[str],
    val_metrics: Mapping[str, str] | None = None,
    result_rows: Sequence[Mapping[str, Any]] = (),
    out_label_efficiency: str | None = None,
) -> None:
    """Draw every figure of a finished run and write each file atomically.

    ``metrics`` / ``histories`` / ``predictions`` map model names to the metrics JSON, the
    training history JSON and the folder of predictions (.lab or .jams); ``timelines`` lists
    (track id, reference annotation). ``out_confusion`` has one PNG per model of ``metrics`` and
    ``out_timelines`` one per timeline, in the same order. ``result_rows`` (the run plan's
    (variant, budget, model, metrics) rows) feed the label-efficiency figure.
    """
    scores = {m: read_scores(p) for m, p in metrics.items()}
    means = {m: s.mean for m, s in scores.items()}
    n_songs = next(iter(scores.values())).n_songs if scores else 0
    atomic_write_text(out_table_html, scores_table_html(means, n_songs))
    save_figure(scores_table_figure(means), out_table_png)
    recall, share, precision = quality_series({m: s.groups for m, s in scores.items()})
    save_figure(quality_recall_figure(recall, share, precision=precision), out_quality)
    for (model, s), png in zip(scores.items(), out_confusion, strict=True):
        confusion = s.confusion
        save_figure(confusion_figure(confusion["labels"], confusion["seconds"], model), png)
    curves = {m: read_history(p) for m, p in histories.items()}
    save_figure(training_curves_figure(curves, val_metrics), out_training)
    for (tid, reference), png in zip(timelines, out_timelines, strict=True):
        estimates = {m: _prediction(d, tid) for m, d in predictions.items()}
        save_figure(timeline_figure(read_annotation(reference), estimates, tid), png)
    if out_label_efficiency:
        row_scores = {r["metrics"]: read_scores(r["metrics"]) for r in result_rows}
        points = label_efficiency_points(result_rows, row_scores)
        save_figure(label_efficiency_figure(points), out_label_efficiency)


def _prediction(folder: str, tid: str) -> list[ChordSegment]:
    """A model's predicted segments of a track: <tid>.lab or <tid>.jams in its folder, as the
    evaluation wrote them (evaluation.prediction_format)."""
    path = find_annotation(Path(folder) / tid)
    if path is None:
        raise LabFormatError(Path(folder) / tid, None, "no prediction file (.lab or .jams)")
    return read_annotation(path)

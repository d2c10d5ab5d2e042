"""results/summary.md: the seven mir_eval scores per model with 95 % intervals, per-quality
recall / precision, and, when the config has variants, one row per (variant, model), the
paired stage 2 - baseline differences and the rarer qualities' recall / precision per variant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mirkd.atomic import atomic_write_text
from mirkd.evaluation import METRICS, QUALITY_GROUPS, paired_difference
from mirkd.history import read_history
from mirkd.scores import ModelScores, Scores, read_scores
from mirkd.stages import BASELINE, STAGE1, STAGE2, TEACHER

RARE_QUALITIES = ("maj7", "min7", "7", "sus4", "sus2", "dim", "hdim7", "aug", "maj6")


def _cell(value: float | None, scale: float = 100) -> str:
    return "–" if value is None else f"{scale * value:.1f}"


def _with_ci(value: float | None, ci: Sequence[float] | None) -> str:
    if value is None:
        return "–"
    if not ci:
        return _cell(value)
    return f"{100 * value:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _signed(diff: Mapping[str, Any] | None) -> str:
    if not diff or not diff.get("ci95"):
        return "–" if not diff else f"{100 * diff['mean7']:+.1f}"
    lo, hi = diff["ci95"]
    return f"{100 * diff['mean7']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _shown(
    reference: Mapping[str, Mapping],
    estimates: Sequence[Mapping[str, Mapping]],
    qualities: Sequence[str],
) -> list[str]:
    """Qualities of the test set plus those any model calls, so over-calling is visible."""
    return [
        q
        for q in qualities
        if reference.get(q, {}).get("seconds", 0) > 0
        or any((g.get(q, {}).get("est_seconds") or 0) > 0 for g in estimates)
    ]


def _recall_precision(group: Mapping[str, Any] | None) -> str:
    """The cell `recall / precision` in %, "–" where missing (older metrics lack precision)."""
    group = group or {}
    return f"{_cell(group.get('recall'))} / {_cell(group.get('precision'))}"


def _mean7_cells(metrics: ModelScores) -> tuple[str, str]:
    """(argmax, Viterbi) 7-metric means with their intervals; "–" where absent."""
    argmax = _with_ci(metrics.mean7, metrics.interval("mean7"))
    vit = metrics.viterbi
    decoded = _with_ci(vit.mean7, vit.interval("mean7")) if vit else "–"
    return argmax, decoded


def summary_markdown(metrics: Mapping[str, ModelScores]) -> str:
    """Markdown tables (scores in %) from {model name: its metrics file}."""
    models = list(metrics)
    lines = [
        "# mirkd results",
        "",
        "Weighted chord symbol recall (%) on the test split, song-duration weighted "
        "(mir_eval, raw references), frame argmax. mean7 = mean of the seven scores; "
        "[lo, hi] = 95 % song-level bootstrap interval. Viterbi: HMM decoding whose "
        "self-transition prior was chosen on the labeled validation songs.",
        "",
        "| model | " + " | ".join(METRICS) + " | mean7 | mean7 Viterbi | songs |",
        "|---|" + "---:|" * (len(METRICS) + 3),
    ]
    for name in models:
        scores = metrics[name]
        cells = " | ".join(_with_ci(scores.mean[m], scores.interval(m)) for m in METRICS)
        argmax, decoded = _mean7_cells(scores)
        lines.append(f"| {name} | {cells} | {argmax} | {decoded} | {scores.n_songs} |")
    lines += beats_markdown(metrics)
    groups = metrics[models[0]].groups if models else {}
    shown = _shown(groups, [metrics[m].groups for m in models], QUALITY_GROUPS)
    lines += [
        "",
        "Per-quality recall / precision (%): recall = share of the quality's reference time "
        "whose estimate has the same root and quality; precision = share of the time the "
        "quality is estimated whose reference has the same root and quality (– = never "
        "called); share = the quality's share of test time.",
        "",
        "| quality | share | " + " | ".join(f"{m} R / P" for m in models) + " |",
        "|---|---:|" + "---:|" * len(models),
    ]
    for q in shown:
        cells = " | ".join(_recall_precision(metrics[m].groups.get(q)) for m in models)
        lines.append(f"| {q} | {_cell(groups.get(q, {}).get('share'))} | {cells} |")
    return "\n".join(lines) + "\n"


def beats_markdown(metrics: Mapping[str, ModelScores]) -> list[str]:
    """The table of the chords decided per beat (`evaluation.beats`), of the models that have
    them; no lines when none has."""
    scored = [name for name in metrics if metrics[name].beats is not None]
    if not scored:
        return []
    lines = [
        "",
        "Chords per beat (evaluation.beats: beats tracked once per test song, frame "
        "log-posteriors summed per beat, Viterbi over beats). Δ = per beat minus the frames it "
        "falls back to (Viterbi; teacher: argmax), 7-metric mean, paired bootstrap; songs "
        "without beats are scored on those frames.",
        "",
        "| model | majmin per beat | mean7 per beat | Δ vs frames [95 % CI] | no beat |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in scored:
        m = metrics[name]
        beats = m.beats
        assert beats is not None
        frames: Scores = m.viterbi if beats.fallback == "viterbi" and m.viterbi else m
        diff = paired_difference(beats.per_song, frames.per_song)
        lines.append(
            f"| {name} | {_cell(beats.mean['majmin'])} | "
            f"{_with_ci(beats.mean7, beats.interval('mean7'))} | "
            f"{_signed(diff)} | {len(beats.no_beats)} of {beats.n_songs} |"
        )
    return lines


def variants_markdown(rows: Sequence[Mapping[str, Any]], metrics: Mapping[str, ModelScores]) -> str:
    """Tables over every (variant, model) row: scores, stage 2 - baseline, rare qualities.

    `rows` are the run plan's result rows (variant, budget, model, metrics path); `metrics`
    maps a metrics path to its record. A model shared by several variants shows its numbers
    in each of their rows.
    """
    lines = [
        "## Variants",
        "",
        "budget = labeled training songs. A model a variant shares with an earlier variant "
        "(same settings) is trained once; `(= name)` names the variant that trained it. "
        "A teacher (named by its tag) is listed with the first variant that uses it.",
        "",
        "val = the best validation score the checkpoint was selected on (stage 1: agreement "
        "with the teacher on held-out unlabeled audio; stage 2 and baseline: the stage's "
        "`val_metric` on the labeled validation songs). Choose settings by this column only.",
        "",
        "| variant | budget | model | val | majmin | mean7 | mean7 Viterbi |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    teachers_seen: set[str] = set()
    listed = []
    for row in rows:
        if row["model"] == TEACHER:
            if row["metrics"] in teachers_seen:
                continue
            teachers_seen.add(row["metrics"])
        listed.append(row)
    for row in listed:
        m = metrics[row["metrics"]]
        argmax, decoded = _mean7_cells(m)
        lines.append(
            f"| {row['variant']} | {row['budget']} | {_model_cell(row)} | "
            f"{_cell(best_validation(row.get('history')))} | "
            f"{_cell(m.mean['majmin'])} | {argmax} | {decoded} |"
        )
    lines += [
        "",
        "Stage 2 minus baseline, and minus the variant's teacher (argmax), 7-metric mean "
        "(points), paired bootstrap over test songs:",
        "",
        "| variant | budget | Δ baseline, argmax [95 % CI] | Δ baseline, Viterbi [95 % CI] "
        "| Δ teacher, argmax [95 % CI] |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant, group in _by_variant(rows).items():
        s2, base = metrics[group[STAGE2]["metrics"]], metrics[group[BASELINE]["metrics"]]
        teacher = metrics[group[TEACHER]["metrics"]]
        diff = paired_difference(s2.per_song, base.per_song)
        vdiff = (
            paired_difference(s2.viterbi.per_song, base.viterbi.per_song)
            if s2.viterbi and base.viterbi
            else None
        )
        tdiff = paired_difference(s2.per_song, teacher.per_song)
        lines.append(
            f"| {variant} | {group[STAGE2]['budget']} | {_signed(diff)} | {_signed(vdiff)} "
            f"| {_signed(tdiff)} |"
        )
    lines += _options_markdown(rows, metrics)
    first = metrics[rows[0]["metrics"]].groups
    called = [metrics[r["metrics"]].groups for r in listed]
    rare = _shown(first, called, RARE_QUALITIES)
    lines += [
        "",
        "Recall / precision (%) of the rarer qualities (same root and quality), argmax; "
        "precision – = never called; share of test time in the header:",
        "",
        "| variant | model | "
        + " | ".join(f"{q} ({_cell(first.get(q, {}).get('share'))}) R / P" for q in rare)
        + " |",
        "|---|---|" + "---:|" * len(rare),
    ]
    for row in listed:
        groups = metrics[row["metrics"]].groups
        cells = " | ".join(_recall_precision(groups.get(q)) for q in rare)
        lines.append(f"| {row['variant']} | {_model_cell(row)} | {cells} |")
    return "\n".join(lines) + "\n"


def _options_markdown(
    rows: Sequence[Mapping[str, Any]], metrics: Mapping[str, ModelScores]
) -> list[str]:
    """Each variant with options against its reference (same labeled songs, base settings):
    paired differences of stage 1 and stage 2, validation, and seconds per training epoch."""
    grouped = _by_variant(rows)
    measured = [(v, g) for v, g in grouped.items() if g[STAGE2].get("reference")]
    if not measured:
        return []
    lines = [
        "",
        "Options against their reference (the variant with the same labeled songs and the base "
        "settings): 7-metric mean, argmax, variant minus reference (points, paired bootstrap "
        "over test songs); val = stage 2's validation score minus the reference's; s/epoch = "
        "mean seconds per training epoch (jobs may have shared the CPU):",
        "",
        "| variant | reference | Δ stage 1 [95 % CI] | Δ stage 2 [95 % CI] | Δ val stage 2 "
        "| stage 1 s/epoch | stage 2 s/epoch |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for variant, group in measured:
        ref = grouped[group[STAGE2]["reference"]]
        cells = []
        for model in (STAGE1, STAGE2):
            ours, theirs = metrics[group[model]["metrics"]], metrics[ref[model]["metrics"]]
            cells.append(_signed(paired_difference(ours.per_song, theirs.per_song)))
        val, ref_val = (best_validation(g[STAGE2].get("history")) for g in (group, ref))
        dval = None if val is None or ref_val is None else val - ref_val
        speed = " | ".join(
            _cell(epoch_seconds(group[m].get("history")), scale=1) for m in (STAGE1, STAGE2)
        )
        lines.append(
            f"| {variant} | {group[STAGE2]['reference']} | {cells[0]} | {cells[1]} "
            f"| {'–' if dval is None else f'{100 * dval:+.1f}'} | {speed} |"
        )
    return lines


def epoch_seconds(history_path: str | None) -> float | None:
    """Mean seconds per epoch of a training history file (None for the teacher)."""
    if not history_path:
        return None
    seconds = [epoch.seconds for epoch in read_history(history_path)]
    return sum(seconds) / len(seconds) if seconds else None


def _model_cell(row: Mapping[str, Any]) -> str:
    if row["model"] == TEACHER and row.get("teacher"):
        return f"teacher {row['teacher']}"
    owner = row.get("trained_by")
    return row["model"] if not owner or owner == row["variant"] else f"{row['model']} (= {owner})"


def best_validation(history_path: str | None) -> float | None:
    """The best validation score of a training history file (None for the teacher)."""
    if not history_path:
        return None
    scores = [epoch.val_score for epoch in read_history(history_path)]
    return max(scores) if scores else None


def _by_variant(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Mapping[str, Any]]]:
    grouped: dict[str, dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["variant"], {})[row["model"]] = row
    return grouped


def read_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, ModelScores]:
    """Metrics path -> the scores of every result row (the run plan's `result_rows`), each
    file read once."""
    return {r["metrics"]: read_scores(r["metrics"]) for r in rows}


def write_summary(
    rows: Sequence[Mapping[str, Any]],
    splits: str,
    out: str | Path,
    skipped: str | None = None,
    labeled_in_unlabeled: Sequence[Sequence[str]] = (),
) -> None:
    """Read every metrics JSON of the run plan's result rows and write the summary atomically.

    The first table is the base run; the variant tables follow when there are variants;
    `skipped` (results/skipped.tsv) adds the count of undecodable unlabeled tracks;
    `labeled_in_unlabeled` (labeled audio, unlabeled audio) lists the songs in both sets.
    """
    metrics = read_metrics(rows)
    base = {r["model"]: metrics[r["metrics"]] for r in rows if r["variant"] == rows[0]["variant"]}
    text = summary_markdown(base)
    if len({r["variant"] for r in rows}) > 1:
        text += "\n" + variants_markdown(rows, metrics)
    text += f"\nSplits: `{splits}`\n"
    if skipped:
        text += skipped_note(skipped)
    if labeled_in_unlabeled:
        text += labeled_in_unlabeled_note(labeled_in_unlabeled)
    atomic_write_text(out, text)


def skipped_note(skipped_tsv: str | Path) -> str:
    """One line: how many unlabeled tracks were skipped (undecodable), and where they are listed."""
    n = len(Path(skipped_tsv).read_text(encoding="utf-8").splitlines()) - 1
    return f"\nSkipped unlabeled tracks (cannot be decoded): {n}, listed in `{skipped_tsv}`\n"


def labeled_in_unlabeled_note(pairs: Sequence[Sequence[str]]) -> str:
    """The labeled songs whose audio is also in the unlabeled set, as a table."""
    lines = [
        "",
        f"Labeled songs also in the unlabeled set (data.allow_labeled_in_unlabeled; stage 1 "
        f"trained on their audio with teacher labels): {len(pairs)}",
        "",
        "| labeled | unlabeled |",
        "|---|---|",
        *(f"| `{labeled}` | `{unlabeled}` |" for labeled, unlabeled in pairs),
    ]
    return "\n".join(lines) + "\n"

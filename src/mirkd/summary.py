"""results/summary.md: one table of the seven mir_eval scores per model, plus rare qualities."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from mirkd.atomic import atomic_write_text
from mirkd.evaluation import METRICS, QUALITY_GROUPS


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def summary_markdown(metrics: Mapping[str, Mapping]) -> str:
    """Markdown tables (scores in %) from {model name: metrics JSON content}."""
    models = list(metrics)
    lines = [
        "# mirkd results",
        "",
        "Weighted chord symbol recall (%) on the test split, song-duration weighted "
        "(mir_eval, raw references).",
        "",
        "| model | " + " | ".join(METRICS) + " | songs |",
        "|---|" + "---:|" * (len(METRICS) + 1),
    ]
    for name in models:
        mean = metrics[name]["mean"]
        cells = " | ".join(_cell(mean[m]) for m in METRICS)
        lines.append(f"| {name} | {cells} | {metrics[name]['n_songs']} |")
    groups = metrics[models[0]]["quality"]["groups"] if models else {}
    present = [q for q in QUALITY_GROUPS if groups.get(q, {}).get("seconds", 0) > 0]
    lines += [
        "",
        "Per-quality recall (%): reference time of the quality whose estimate has the same "
        "root and quality; share = the quality's share of test time.",
        "",
        "| quality | share | " + " | ".join(models) + " |",
        "|---|---:|" + "---:|" * len(models),
    ]
    for q in present:
        cells = " | ".join(_cell(metrics[m]["quality"]["groups"][q]["recall"]) for m in models)
        lines.append(f"| {q} | {_cell(groups[q]['share'])} | {cells} |")
    return "\n".join(lines) + "\n"


def write_summary(
    metrics_paths: Mapping[str, str], splits: str, out: str | Path, skipped: str | None = None
) -> None:
    """Read each model's metrics JSON and write the summary markdown atomically."""
    metrics = {name: json.loads(Path(p).read_text()) for name, p in metrics_paths.items()}
    text = summary_markdown(metrics) + f"\nSplits: `{splits}`\n"
    if skipped:
        text += skipped_note(skipped)
    atomic_write_text(out, text)


def skipped_note(skipped_tsv: str | Path) -> str:
    """One line: how many unlabeled tracks were skipped (undecodable), and where they are listed."""
    n = len(Path(skipped_tsv).read_text(encoding="utf-8").splitlines()) - 1
    return f"\nSkipped unlabeled tracks (cannot be decoded): {n}, listed in `{skipped_tsv}`\n"

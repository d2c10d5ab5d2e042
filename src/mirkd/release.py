"""The released model: float16 export of a run's stage-2 and stage-1 students, and its card.

The workflow's `release` target (rules/release.smk) calls `make_release`, which writes

    model.pt, stage1.pt   the two checkpoints in the mirkd format with float16 weights (loading
                          casts them back to float32), each at most MAX_BYTES
    model_card.json       what the model is: data per set (songs, hours), the data's sources and
                          licences, teacher, student, resolved stage settings, the commit and
                          mirkd version that trained and exported it, and the test-set scores
                          of every model of the run with their 95 % intervals
    MODEL_CARD.md         the same card for people

`make release` copies them into the package (mirkd.released), where `mirkd transcribe`,
`mirkd info`, `teacher.kind: mirkd` and `stage2.init: released` find them.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mirkd import __version__
from mirkd.atomic import atomic_path, atomic_write_json, atomic_write_text
from mirkd.checkpoints import _git_commit, load_checkpoint, save_checkpoint
from mirkd.errors import MirkdError
from mirkd.evaluation import METRICS
from mirkd.manifest import data_root
from mirkd.summary import read_metrics

MAX_BYTES = 8_000_000  # the limit for weights in the repository: 8 MB per file
SOURCES_MANIFEST = "manifest.tsv"  # written by shared/tools/prepare_unlabeled.py
TRAINED_KEYS = ("mirkd_version", "git_commit", "created")


class ReleaseError(MirkdError):
    """The release cannot be made (a file too large, a missing score)."""


def export_checkpoint(
    source: str | Path, out: str | Path, max_bytes: int = MAX_BYTES
) -> dict[str, Any]:
    """Write the checkpoint `source` to `out` with float16 weights, atomically; ReleaseError
    (and no `out`) if the file would exceed `max_bytes`. Returns the file's size and sha256.

    The exported provenance keeps the training's (its mirkd version, commit and time under
    "trained"; save_checkpoint stamps the export's) and names the source file and its sha256.
    """
    source, out = Path(source), Path(out)
    bundle = load_checkpoint(source)
    trained = {k: bundle.provenance.get(k) for k in TRAINED_KEYS}
    bundle.provenance = {
        **{k: v for k, v in bundle.provenance.items() if k not in TRAINED_KEYS},
        "trained": trained,
        "weights": "float16",
        "exported_from": {"file": source.name, "sha256": _sha256(source)},
    }
    with atomic_path(out) as tmp:
        save_checkpoint(tmp, bundle, float16=True)
        size = tmp.stat().st_size
        if size > max_bytes:
            raise ReleaseError(
                f"{out}: the float16 export of {source} is {size / 1e6:.2f} MB, over the "
                f"{max_bytes / 1e6:g} MB allowed for weights in the repository: release a "
                "smaller student (student.hparams)"
            )
        sha256 = _sha256(tmp)
    return {"file": out.name, "bytes": size, "sha256": sha256}


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def unlabeled_sources(folders: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Per unlabeled folder with a manifest.tsv (shared/tools/prepare_unlabeled.py: package,
    source, flac, source_s, kept_s, license): one row per package with its file count, kept
    hours and licence. Folders without one are listed with their name only."""
    rows: list[dict[str, Any]] = []
    for folder in folders:
        manifest = data_root(folder) / SOURCES_MANIFEST  # the config's $VARS and ~ expanded
        if not manifest.is_file():
            rows.append({"folder": str(folder), "package": None, "license": None})
            continue
        packages: dict[str, dict[str, Any]] = {}
        with manifest.open(newline="", encoding="utf-8") as f:
            for line in csv.DictReader(f, delimiter="\t"):
                row = packages.setdefault(
                    line["package"],
                    {
                        "folder": str(folder),
                        "package": line["package"],
                        "license": line["license"],
                        "files": 0,
                        "hours": 0.0,
                    },
                )
                row["files"] += 1
                row["hours"] += float(line["kept_s"]) / 3600.0
        rows.extend({**r, "hours": round(r["hours"], 3)} for _, r in sorted(packages.items()))
    return rows


def scores_of(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Model -> its fixed test-set scores with 95 % intervals, from the run plan's result rows
    of one variant (read with the summary's reader)."""
    metrics = read_metrics(rows)
    scores = {}
    for row in rows:
        m = metrics[row["metrics"]]
        entry: dict[str, Any] = {
            "n_songs": m.n_songs,
            "mean7": m.mean7,
            "mean7_ci95": m.ci95.get("mean7"),
            "metrics": {k: {"value": m.mean[k], "ci95": m.ci95.get(k)} for k in METRICS},
        }
        if m.viterbi is not None:
            entry["viterbi"] = {
                "stay": m.viterbi.stay,
                "mean7": m.viterbi.mean7,
                "mean7_ci95": m.viterbi.ci95.get("mean7"),
            }
        name = f"teacher {row['teacher']}" if row["model"] == "teacher" else row["model"]
        scores[name] = entry
    return scores


def model_card(
    model: Mapping[str, Any],
    stage1: Mapping[str, Any],
    variant: str,
    data: Mapping[str, Mapping[str, Any]],
    sources: Sequence[Mapping[str, Any]],
    notes: Sequence[str],
    teacher: Mapping[str, Any],
    stages: Mapping[str, Any],
    scores: Mapping[str, Any],
) -> dict[str, Any]:
    """The card as JSON: `model`/`stage1` are the exported files (export_checkpoint) with the
    stage-2 checkpoint's description; the rest comes from the run plan."""
    return {
        "name": "mirkd chord recognizer",
        "variant": variant,
        "model": dict(model),
        "stage1": dict(stage1),
        "data": {k: dict(v) for k, v in data.items()},
        "sources": [dict(s) for s in sources],
        "source_notes": list(notes),
        "teacher": dict(teacher),
        "stages": dict(stages),
        "test_scores": dict(scores),
        "mirkd_version": __version__,
        "exported_commit": _git_commit(),
    }


def _pct(value: float | None, ci: Sequence[float] | None = None) -> str:
    if value is None:
        return "–"
    text = f"{100 * value:.1f}"
    return f"{text} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else text


def card_markdown(card: Mapping[str, Any]) -> str:
    """MODEL_CARD.md: the card's contents as text and tables."""
    model = card["model"]
    trained = model.get("trained") or {}
    lines = [
        f"# {card['name']}",
        "",
        f"Student `{model['arch']}` ({model['n_parameters']:,} parameters, vocabulary "
        f"{model['vocab']}), float16 weights: `model.pt` (stage 2, {model['bytes'] / 1e6:.2f} MB) "
        f"and `stage1.pt` (stage 1, {card['stage1']['bytes'] / 1e6:.2f} MB).",
        "",
        f"- run variant: {card['variant']}",
        f"- trained with mirkd {trained.get('mirkd_version')} at commit "
        f"`{trained.get('git_commit')}` ({trained.get('created')})",
        f"- exported with mirkd {card['mirkd_version']} at commit `{card['exported_commit']}`",
        f"- teacher: `{card['teacher'].get('tag')}` {card['teacher'].get('settings')}",
        f"- sha256: model.pt `{model['sha256']}`, stage1.pt `{card['stage1']['sha256']}`",
        "",
        "## Data",
        "",
        "| set | songs | hours |",
        "|---|---:|---:|",
        *(f"| {k} | {v['songs']} | {v['hours']:.2f} |" for k, v in card["data"].items()),
        "",
        "Sources and licences:",
        "",
    ]
    for s in card["sources"]:
        if s.get("package"):
            lines.append(
                f"- {s['package']} ({s['license']}): {s['files']} files, {s['hours']:.2f} h "
                f"(`{s['folder']}`)"
            )
        else:
            lines.append(f"- `{s['folder']}` (no {SOURCES_MANIFEST})")
    lines += [f"- {note}" for note in card["source_notes"]]
    lines += [
        "",
        "## Test scores",
        "",
        "Weighted chord symbol recall (%) on the fixed test set, frame argmax; [lo, hi] = 95 % "
        "song-level bootstrap interval; mean7 = mean of the seven scores.",
        "",
        "| model | songs | " + " | ".join(METRICS) + " | mean7 | mean7 Viterbi |",
        "|---|---:|" + "---:|" * (len(METRICS) + 2),
    ]
    for name, s in card["test_scores"].items():
        cells = " | ".join(_pct(s["metrics"][k]["value"], s["metrics"][k]["ci95"]) for k in METRICS)
        vit = s.get("viterbi")
        decoded = _pct(vit["mean7"], vit["mean7_ci95"]) if vit else "–"
        lines.append(
            f"| {name} | {s['n_songs']} | {cells} | {_pct(s['mean7'], s['mean7_ci95'])} "
            f"| {decoded} |"
        )
    lines += ["", "## Student", "", "```", _json(model["hparams"]), "```"]
    lines += ["", "## Stage settings", "", "```", _json(card["stages"]), "```", ""]
    return "\n".join(lines)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


def make_release(
    stage2: str,
    stage1: str,
    out_model: str,
    out_stage1: str,
    out_card: str,
    out_markdown: str,
    variant: str,
    rows: Sequence[Mapping[str, Any]],
    data: Mapping[str, Mapping[str, Any]],
    unlabeled_folders: Sequence[str],
    notes: Sequence[str],
    teacher: Mapping[str, Any],
    stages: Mapping[str, Any],
    max_bytes: int = MAX_BYTES,
) -> dict[str, Any]:
    """Export both checkpoints and write the card (JSON and Markdown); returns the card."""
    scores = scores_of(rows)  # first: a missing metrics file fails before any export
    exported = export_checkpoint(stage2, out_model, max_bytes)
    exported_stage1 = export_checkpoint(stage1, out_stage1, max_bytes)
    bundle = load_checkpoint(out_model)
    model = {
        **exported,
        "arch": bundle.arch,
        "hparams": bundle.hparams,
        "vocab": bundle.vocab.name,
        "n_parameters": sum(p.numel() for p in bundle.model.parameters()),
        "feature_params": bundle.feature_params.to_dict(),
        "trained": bundle.provenance.get("trained"),
    }
    card = model_card(
        model,
        exported_stage1,
        variant,
        data,
        unlabeled_sources(unlabeled_folders),
        notes,
        teacher,
        stages,
        scores,
    )
    atomic_write_json(out_card, card)
    atomic_write_text(out_markdown, card_markdown(card))
    return card

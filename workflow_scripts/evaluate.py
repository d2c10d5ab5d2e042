from mirkd.steps import start_job

start_job(snakemake.log[0], snakemake.threads)
from mirkd.manifest import TrackFiles  # noqa: E402
from mirkd.steps.evaluate import evaluate_checkpoint, evaluate_teacher  # noqa: E402

tracks = TrackFiles.from_params(snakemake.params.tracks)
out = dict(
    out_metrics=snakemake.output.metrics,
    predictions_dir=snakemake.output.predictions,
    prediction_format=snakemake.params.prediction_format,
)
# evaluation.beats: track id -> beats file and the per-beat stay (no such params when off)
out.update(
    {
        k: getattr(snakemake.params, k)
        for k in ("beats", "beat_stay")
        if hasattr(snakemake.params, k)
    }
)
if snakemake.rule == "evaluate_teacher":
    evaluate_teacher(tracks, **out)
else:
    evaluate_checkpoint(
        snakemake.input.checkpoint,
        tracks,
        snakemake.params.device,
        val_tracks=TrackFiles.from_params(snakemake.params.val_tracks),
        val_metric=snakemake.params.val_metric,
        **out,
    )

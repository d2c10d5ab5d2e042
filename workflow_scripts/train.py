from mirkd.steps import start_job

start_job(snakemake.log[0], snakemake.threads)
from mirkd.manifest import BucketFiles, TrackFiles  # noqa: E402
from mirkd.steps.train import train_stage1, train_supervised  # noqa: E402

p = snakemake.params
outputs = dict(out_checkpoint=snakemake.output.checkpoint, out_history=snakemake.output.history)
if snakemake.rule == "stage1":
    train_stage1(
        p.common,
        p.train,
        BucketFiles.from_params(p.train_buckets),
        BucketFiles.from_params(p.val_buckets),
        p.work,
        prior_annotations=p.get("prior_annotations", []),
        **outputs,
    )
else:
    train_supervised(
        snakemake.rule,
        p.common,
        p.train,
        TrackFiles.from_params(p.train_tracks),
        TrackFiles.from_params(p.val_tracks),
        p.work,
        init_checkpoint=snakemake.input.get("init"),
        distil=p.get("distil", False),
        rehearsal_buckets=BucketFiles.from_params(p.get("rehearsal_buckets", [])),
        **outputs,
    )

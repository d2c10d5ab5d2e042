from mirkd.steps import start_job

start_job(snakemake.log[0], snakemake.threads)
from mirkd.steps.train import train_stage1, train_supervised  # noqa: E402

p = snakemake.params
outputs = dict(out_checkpoint=snakemake.output.checkpoint, out_history=snakemake.output.history)
if snakemake.rule == "stage1":
    train_stage1(p.common, p.train, p.shards, p.train_tracks, p.val_tracks, p.work, **outputs)
else:
    train_supervised(
        snakemake.rule,
        p.common,
        p.train,
        p.train_tracks,
        p.val_tracks,
        p.work,
        init_checkpoint=snakemake.input.get("init"),
        teacher_outputs={r[0]: f"{p.teacher_dir}/{r[0]}.h5" for r in p.train_tracks}
        if "teacher" in snakemake.input.keys()
        else None,
        **outputs,
    )

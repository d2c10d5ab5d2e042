from mirkd.steps import start_job

start_job(snakemake.log[0])
from mirkd.release import make_release  # noqa: E402  (after the job's setup)

i, o, p = snakemake.input, snakemake.output, snakemake.params
make_release(
    i.stage2,
    i.stage1,
    o.model,
    o.stage1,
    o.card,
    o.markdown,
    variant=p.variant,
    rows=p.rows,
    data=p.data,
    unlabeled_folders=p.unlabeled_folders,
    notes=p.notes,
    teacher=p.teacher,
    stages=p.stages,
)

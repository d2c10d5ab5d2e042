from mirkd.steps import start_job

start_job(snakemake.log[0])
from mirkd.summary import write_summary  # noqa: E402  (after the job's setup)

skipped = snakemake.input.skipped  # none when no stage 1 trains (stage2.init)
write_summary(
    snakemake.params.rows,
    snakemake.input.splits,
    snakemake.output[0],
    skipped[0] if skipped else None,
    snakemake.params.labeled_in_unlabeled,
)

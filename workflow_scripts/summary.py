from mirkd.steps import start_job

start_job(snakemake.log[0])
from mirkd.summary import write_summary  # noqa: E402  (after the job's setup)

write_summary(
    snakemake.params.rows,
    snakemake.input.splits,
    snakemake.output[0],
    snakemake.input.skipped,
    snakemake.params.labeled_in_unlabeled,
)

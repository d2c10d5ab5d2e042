from mirkd.steps import start_job

start_job(snakemake.log[0])
from mirkd.steps.teacher import write_skipped_report  # noqa: E402  (after the job's setup)

write_skipped_report(
    snakemake.output[0],
    snakemake.input.buckets,
    snakemake.params.n_unlabeled,
    snakemake.params.max_fraction,
)

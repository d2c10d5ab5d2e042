from mirkd.steps import start_job

start_job(snakemake.log[0])
from mirkd.steps.data import write_splits  # noqa: E402  (after the job's setup)

write_splits(snakemake.output[0], snakemake.params.rows)

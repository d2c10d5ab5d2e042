from pathlib import Path

from mirkd.steps import start_job

start_job(snakemake.log[0])
from mirkd.summary import write_summary  # noqa: E402  (after the job's setup)

metrics = {Path(p).stem: p for p in snakemake.input.metrics}
write_summary(metrics, snakemake.input.splits, snakemake.output[0], snakemake.input.skipped)

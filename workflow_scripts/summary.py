from pathlib import Path

from mirkd.steps import start_job
from mirkd.summary import write_summary

start_job(snakemake.log[0])
metrics = {Path(p).stem: p for p in snakemake.input.metrics}
write_summary(metrics, snakemake.input.splits, snakemake.output[0])

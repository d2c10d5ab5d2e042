from pathlib import Path

from mirkd.pipeline import start_job, summarize

start_job(snakemake.log[0])
metrics = {Path(p).stem: p for p in snakemake.input.metrics}
summarize(metrics, snakemake.input.splits, snakemake.output[0])

from pathlib import Path

from mirkd.steps import start_job
from mirkd.steps.evaluate import summarize

start_job(snakemake.log[0])
metrics = {Path(p).stem: p for p in snakemake.input.metrics}
summarize(metrics, snakemake.input.splits, snakemake.output[0])

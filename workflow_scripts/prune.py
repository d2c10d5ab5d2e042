from mirkd.steps import start_job

start_job(snakemake.log[0])
from mirkd.stale import prune_logged  # noqa: E402  (after the job's setup)

prune_logged(snakemake.params.stale, snakemake.params.results)

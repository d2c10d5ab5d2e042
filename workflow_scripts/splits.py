from mirkd.steps import start_job
from mirkd.steps.data import write_splits

start_job(snakemake.log[0])
write_splits(snakemake.output[0], snakemake.params.rows)

from mirkd.steps import start_job
from mirkd.summary import write_summary

start_job(snakemake.log[0])
write_summary(snakemake.params.rows, snakemake.input.splits, snakemake.output[0])

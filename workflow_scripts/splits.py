from mirkd.pipeline import start_job, write_splits

start_job(snakemake.log[0])
write_splits(snakemake.output[0], snakemake.params.rows)

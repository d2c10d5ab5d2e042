from mirkd.pipeline import make_demo, start_job

start_job(snakemake.log[0])
make_demo(snakemake.output.corpus.rsplit("/", 1)[0], snakemake.params.demo)

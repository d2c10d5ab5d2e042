from mirkd.steps import start_job

start_job(snakemake.log[0])
from mirkd.steps.demo import make_demo  # noqa: E402  (after the job's thread limits are set)

make_demo(snakemake.output.corpus.rsplit("/", 1)[0], snakemake.params.demo)

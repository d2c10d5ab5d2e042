from mirkd.pipeline import run_teacher, start_job

start_job(snakemake.log[0], snakemake.threads)
run_teacher(
    snakemake.output[0],
    snakemake.params.teacher,
    snakemake.params.tracks,
    snakemake.params.fingerprints,
)

from mirkd.steps import start_job

start_job(snakemake.log[0], snakemake.threads)
from mirkd.manifest import TrackFiles  # noqa: E402
from mirkd.steps.teacher import run_ensemble_bucket  # noqa: E402

run_ensemble_bucket(
    snakemake.output[0],
    snakemake.params.teacher,
    list(snakemake.input.members),
    TrackFiles.from_params(snakemake.params.tracks),
)

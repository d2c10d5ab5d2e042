from mirkd.steps import start_job

start_job(snakemake.log[0], snakemake.threads)
from mirkd.manifest import TrackFiles  # noqa: E402
from mirkd.steps.teacher import run_teacher_bucket  # noqa: E402

run_teacher_bucket(
    snakemake.output[0],
    snakemake.params.work,
    snakemake.params.teacher,
    TrackFiles.from_params(snakemake.params.tracks),
    skip_undecodable=snakemake.params.skip_undecodable,
    workers=snakemake.threads - 1,
    # from the config, not params: it changes no output, so it must not rerun teacher jobs
    songs_per_pass=snakemake.config["resources"]["teacher_songs_per_pass"],
)

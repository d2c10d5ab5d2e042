from mirkd.steps import start_job

start_job(snakemake.log[0], snakemake.threads)
from mirkd.manifest import TrackFiles  # noqa: E402
from mirkd.steps.beats import track_bucket_beats  # noqa: E402

track_bucket_beats(
    snakemake.output[0],
    snakemake.params.work,
    TrackFiles.from_params(snakemake.params.tracks),
)

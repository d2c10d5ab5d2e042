from mirkd.steps import start_job

start_job(snakemake.log[0], snakemake.threads)
from mirkd.manifest import TrackFiles  # noqa: E402
from mirkd.steps.data import extract_bucket_features  # noqa: E402

extract_bucket_features(
    snakemake.output[0],
    snakemake.params.work,
    TrackFiles.from_params(snakemake.params.tracks),
    skip_undecodable=snakemake.params.skip_undecodable,
)

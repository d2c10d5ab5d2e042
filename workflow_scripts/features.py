from mirkd.steps import start_job

start_job(snakemake.log[0], snakemake.threads)
from mirkd.steps.data import extract_features  # noqa: E402

extract_features(
    snakemake.input.audio,
    snakemake.output[0],
    track_id=snakemake.params.track_id,
    fingerprint=snakemake.params.fingerprint,
    skip_undecodable=snakemake.params.skip_undecodable,
)

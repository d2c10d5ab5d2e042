from mirkd.pipeline import extract_features, start_job

start_job(snakemake.log[0], snakemake.threads)
extract_features(
    snakemake.input.audio,
    snakemake.output[0],
    track_id=snakemake.params.track_id,
    fingerprint=snakemake.params.fingerprint,
)

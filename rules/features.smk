# Log-CQT of a bucket of tracks (a few hours of audio), in one HDF5 file per bucket; the job
# keeps each finished track in results/work/features/ so a killed job resumes.
# An unlabeled track that cannot be decoded is recorded as skipped instead of failing.


rule features:
    input:
        audio=bucket_audio,
    output:
        update(PLAN.features_path("{group}", "{bucket}")),  # kept until replaced: its tracks are reused
    log:
        "results/logs/features/{group}/{bucket}.log",
    benchmark:
        "results/benchmarks/features/{group}/{bucket}.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=RES["features_runtime"],
    params:
        tracks=lambda w: track_params(bucket_tracks(w)),
        skip_undecodable=lambda w: w.group.startswith("unlabeled"),
        work=lambda w: PLAN.bucket_work("features", w.group, w.bucket),
    script:
        "../workflow_scripts/features.py"

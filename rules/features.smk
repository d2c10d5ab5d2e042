# Log-CQT per track, cached in HDF5; keyed by track id (path) and content fingerprint.
# An unlabeled track that cannot be decoded gets a zero-frame "skipped" file instead of failing.


rule features:
    input:
        audio=lambda w: ancient(PLAN.track(w.set, w.track).audio),
    output:
        PLAN.features_path("{set}", "{track}"),
    log:
        "results/logs/features/{set}/{track}.log",
    benchmark:
        "results/benchmarks/features/{set}/{track}.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        track_id=lambda w: w.track,
        fingerprint=lambda w: PLAN.fingerprint(PLAN.track(w.set, w.track)),
        skip_undecodable=lambda w: w.set == "unlabeled",
    script:
        "../workflow_scripts/features.py"

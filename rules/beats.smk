# Beats and downbeats of the test songs (evaluation.beats), one HDF5 file per test bucket under
# results/beats/, tracked once (madmom, as `mirkd transcribe --beats`) and read by the
# evaluation of every model, which then also scores the chords decided per beat. A song with no
# detectable beat is recorded with no beats; one whose audio cannot be decoded as skipped.


rule beats:
    input:
        audio=bucket_audio,
    output:
        update(PLAN.beats_path("{group}", "{bucket}")),  # kept until replaced: its songs are reused
    log:
        "results/logs/beats/{group}/{bucket}.log",
    benchmark:
        "results/benchmarks/beats/{group}/{bucket}.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=RES["features_runtime"],
    params:
        tracks=lambda w: track_params(bucket_tracks(w)),
        work=lambda w: PLAN.bucket_work("beats", w.group, w.bucket),
    script:
        "../workflow_scripts/beats.py"

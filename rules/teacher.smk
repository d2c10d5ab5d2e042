# Teacher inference: the teacher's labels and probabilities for a bucket of tracks, one HDF5
# file per bucket (unlabeled buckets for stage 1, labeled train buckets for KD, test buckets
# for the teacher's scores). Unlabeled tracks that cannot be decoded are recorded as skipped;
# results/skipped.tsv lists them and fails the run if more than data.max_skipped_fraction of
# the unlabeled tracks are bad.

TEACHER = {
    "kind": config["teacher"]["kind"],
    "checkpoint": config["teacher"]["checkpoint"],
    "precision": config["teacher"]["precision"],
    "device": config["device"],
}


rule teacher:
    input:
        audio=bucket_audio,
        features=PLAN.features_path("{group}", "{bucket}"),
    output:
        update(PLAN.teacher_path("{group}", "{bucket}")),  # kept until replaced: its tracks are reused
    log:
        "results/logs/teacher/{group}/{bucket}.log",
    benchmark:
        "results/benchmarks/teacher/{group}/{bucket}.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: RES["teacher_threads"]
    resources:
        **gpu_resources(RES["teacher_threads"]),
        mem_mb=RES["teacher_mem_mb"],
        runtime=RES["teacher_runtime"],
    params:
        teacher=TEACHER,
        tracks=lambda w: track_params(bucket_tracks(w)),
        skip_undecodable=lambda w: w.group.startswith("unlabeled"),
        work=lambda w: PLAN.bucket_work("teacher", w.group, w.bucket),
    script:
        "../workflow_scripts/teacher.py"


rule skipped:
    input:
        buckets=[
            PLAN.teacher_path(r.group, r.name) for r in PLAN.group_buckets(UNLABELED)
        ],
    output:
        "results/skipped.tsv",
    log:
        "results/logs/skipped.log",
    conda:
        "../envs/mirkd.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        n_unlabeled=len(PLAN.tracks["unlabeled"]),
        max_fraction=config["data"]["max_skipped_fraction"],
    script:
        "../workflow_scripts/skipped.py"

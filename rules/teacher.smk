# Teacher inference: a teacher's labels and probabilities for a bucket of tracks, one HDF5
# file per bucket under results/teacher/<teacher tag>/ (unlabeled buckets for stage 1, labeled
# train buckets for KD, test buckets for the teacher's scores). An ensemble teacher averages
# its members' bucket files. Unlabeled tracks that cannot be decoded are recorded as skipped;
# results/skipped.tsv lists them and fails the run if more than data.max_skipped_fraction of
# the unlabeled tracks are bad.


rule teacher:
    input:
        audio=bucket_audio,
        features=PLAN.features_path("{group}", "{bucket}"),
        checkpoint=lambda w: PLAN.teacher_spec(w.teacher).checkpoints(),
    output:
        update(PLAN.teacher_path("{teacher}", "{group}", "{bucket}")),  # kept until replaced: its tracks are reused
    log:
        "results/logs/teacher/{teacher}/{group}/{bucket}.log",
    benchmark:
        "results/benchmarks/teacher/{teacher}/{group}/{bucket}.tsv"
    wildcard_constraints:
        teacher=SINGLE_TEACHER,
    conda:
        "../envs/mirkd.yaml"
    threads: RES["teacher_threads"]
    resources:
        **gpu_resources(RES["teacher_threads"]),
        mem_mb=RES["teacher_mem_mb"],
        runtime=RES["teacher_runtime"],
    params:
        teacher=teacher_settings,
        tracks=lambda w: track_params(bucket_tracks(w)),
        skip_undecodable=lambda w: w.group.startswith("unlabeled"),
        work=lambda w: PLAN.bucket_work("teacher", w.group, w.bucket),
    script:
        "../workflow_scripts/teacher.py"


rule ensemble_teacher:
    input:
        members=lambda w: [
            PLAN.teacher_path(m.tag, w.group, w.bucket)
            for m in PLAN.teacher_spec(w.teacher).members
        ],
    output:
        PLAN.teacher_path("{teacher}", "{group}", "{bucket}"),
    log:
        "results/logs/teacher/{teacher}/{group}/{bucket}.log",
    wildcard_constraints:
        teacher=ENSEMBLE_TEACHER,
    conda:
        "../envs/mirkd.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        teacher=teacher_settings,
        tracks=lambda w: track_params(bucket_tracks(w)),
    script:
        "../workflow_scripts/ensemble_teacher.py"


rule skipped:
    input:
        buckets=[
            PLAN.teacher_path(PLAN.base.teacher.tag, r.group, r.name)
            for r in PLAN.group_buckets(UNLABELED)
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

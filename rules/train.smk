# Stage 1 (pseudo-labels only), stage 2 (ground truth + selective KD), supervised baseline,
# for the base run ({vdir} empty) and every variant ({vdir} = variants/<name>/).
# Resumable state lives in results/{vdir}work/<model>/ (not a declared output, so Snakemake
# keeps it when a killed job is rerun); it is used only if it was made with the same inputs.


rule stage1:
    input:
        buckets=lambda w: [
            path
            for b in PLAN.bucket_files(UNLABELED, variant(w).teacher.tag)
            for path in (b.features, b.teacher)
        ],
        skipped="results/skipped.tsv",  # fails the run first if too many tracks are bad
        prior=stage1_prior_annotations,
    output:
        checkpoint=PLAN.model_file("{vdir}", "stage1"),
        history=PLAN.history_file("{vdir}", "stage1"),
    log:
        "results/logs/{vdir}stage1.log",
    benchmark:
        "results/benchmarks/{vdir}stage1.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: THREADS
    resources:
        **gpu_resources(THREADS),
        mem_mb=RES["train_mem_mb"],
        runtime=RES["train_runtime"],
    params:
        common=train_common,
        train=lambda w: variant(w).settings("stage1"),
        train_buckets=lambda w: unlabeled_buckets(w, "train"),
        val_buckets=lambda w: unlabeled_buckets(w, "val"),
        prior_annotations=stage1_prior_annotations,
        work=lambda w: PLAN.work_dir(w.vdir, "stage1"),
    script:
        "../workflow_scripts/train.py"


rule stage2:
    input:
        unpack(lambda w: labeled_inputs(w, "stage2")),
    output:
        checkpoint=PLAN.model_file("{vdir}", "stage2"),
        history=PLAN.history_file("{vdir}", "stage2"),
    log:
        "results/logs/{vdir}stage2.log",
    benchmark:
        "results/benchmarks/{vdir}stage2.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: THREADS
    resources:
        **gpu_resources(THREADS),
        mem_mb=RES["train_mem_mb"],
        runtime=RES["train_runtime"],
    params:
        common=train_common,
        train=lambda w: variant(w).settings("stage2"),
        train_tracks=lambda w: track_params(
            PLAN.labeled_train(variant(w)), variant(w).teacher.tag
        ),
        val_tracks=track_params(PLAN.in_split("labeled", "val")),
        distil=lambda w: variant(w).distils("stage2"),
        rehearsal_buckets=lambda w: rehearsal_buckets(w, "stage2"),
        work=lambda w: PLAN.work_dir(w.vdir, "stage2"),
    script:
        "../workflow_scripts/train.py"


rule baseline:
    input:
        unpack(lambda w: labeled_inputs(w, "baseline")),
    output:
        checkpoint=PLAN.model_file("{vdir}", "baseline"),
        history=PLAN.history_file("{vdir}", "baseline"),
    log:
        "results/logs/{vdir}baseline.log",
    benchmark:
        "results/benchmarks/{vdir}baseline.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: THREADS
    resources:
        **gpu_resources(THREADS),
        mem_mb=RES["train_mem_mb"],
        runtime=RES["train_runtime"],
    params:
        common=train_common,
        train=lambda w: variant(w).settings("baseline"),
        train_tracks=lambda w: track_params(PLAN.labeled_train(variant(w))),
        val_tracks=track_params(PLAN.in_split("labeled", "val")),
        work=lambda w: PLAN.work_dir(w.vdir, "baseline"),
    script:
        "../workflow_scripts/train.py"

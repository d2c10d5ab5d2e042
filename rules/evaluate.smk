# Evaluation of teacher, stage 1, stage 2 and baseline on the test split, and the summary.


rule evaluate_model:
    input:
        checkpoint=PLAN.model_file("{vdir}", "{model}"),
        features=PLAN.feature_files(PLAN.test_tracks),
        labs=labs_of(PLAN.test_tracks),
        val_features=PLAN.feature_files(PLAN.in_split("labeled", "val")),
        val_labs=labs_of(PLAN.in_split("labeled", "val")),
        beats=beats_inputs(PLAN.test_tracks),
    output:
        metrics=PLAN.metrics_file("{vdir}", "{model}"),
        predictions=directory(PLAN.predictions_dir("{vdir}", "{model}")),
    log:
        "results/logs/{vdir}evaluate/{model}.log",
    benchmark:
        "results/benchmarks/{vdir}evaluate/{model}.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        **beats_params(PLAN.test_tracks),
        tracks=track_params(PLAN.test_tracks),
        val_tracks=track_params(PLAN.in_split("labeled", "val")),
        val_metric=lambda w: variant(w).decode_metric(w.model),
        device=config["device"],
        prediction_format=config["evaluation"]["prediction_format"],
    script:
        "../workflow_scripts/evaluate.py"


rule evaluate_teacher:
    input:
        teacher=lambda w: PLAN.teacher_files(PLAN.test_tracks, w.teacher),
        features=PLAN.feature_files(PLAN.test_tracks),
        labs=labs_of(PLAN.test_tracks),
        beats=beats_inputs(PLAN.test_tracks),
    output:
        metrics=PLAN.teacher_metrics_file("{teacher}"),
        predictions=directory(PLAN.teacher_predictions_dir("{teacher}")),
    log:
        "results/logs/evaluate/teacher/{teacher}.log",
    benchmark:
        "results/benchmarks/evaluate/teacher/{teacher}.tsv"
    conda:
        "../envs/mirkd.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        **beats_params(PLAN.test_tracks),
        tracks=lambda w: track_params(PLAN.test_tracks, w.teacher),
        prediction_format=config["evaluation"]["prediction_format"],
    script:
        "../workflow_scripts/evaluate.py"


rule splits:
    output:
        "results/splits.tsv",
    log:
        "results/logs/splits.log",
    conda:
        "../envs/mirkd.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        rows=PLAN.split_rows(),
    script:
        "../workflow_scripts/splits.py"


rule summary:
    input:
        metrics=PLAN.result_metrics(),
        histories=[PLAN.history_path(v, m) for v, m in PLAN.owned_models()],
        splits="results/splits.tsv",
        # the unlabeled tracks' count: only where a stage 1 trains on them (stage2.init)
        skipped=["results/skipped.tsv"] if PLAN.trains_stage1 else [],
    output:
        "results/summary.md",
    log:
        "results/logs/summary.log",
    conda:
        "../envs/mirkd.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        rows=PLAN.result_rows(),
        labeled_in_unlabeled=PLAN.labeled_in_unlabeled_rows(),
    script:
        "../workflow_scripts/summary.py"

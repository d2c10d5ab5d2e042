# Evaluation of teacher, stage 1, stage 2 and baseline on the test split, and the summary.


rule evaluate_model:
    input:
        checkpoint="results/models/{model}.pt",
        features=features_of(PLAN.test_tracks),
        labs=labs_of(PLAN.test_tracks),
    output:
        metrics="results/metrics/{model}.json",
        predictions=directory("results/predictions/{model}"),
    log:
        "results/logs/evaluate/{model}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        tracks=track_rows(PLAN.test_tracks),
        device=config.get("device", "auto"),
    script:
        "../workflow_scripts/evaluate.py"


rule evaluate_teacher:
    input:
        teacher=teacher_outputs_of(PLAN.test_tracks),
        features=features_of(PLAN.test_tracks),
        labs=labs_of(PLAN.test_tracks),
    output:
        metrics="results/metrics/teacher.json",
        predictions=directory("results/predictions/teacher"),
    log:
        "results/logs/evaluate/teacher.log",
    benchmark:
        "results/benchmarks/evaluate/teacher.tsv"
    conda:
        "../envs/mirkd.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        tracks=track_rows(PLAN.test_tracks),
        teacher_outputs=teacher_outputs_of(PLAN.test_tracks),
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
        metrics=expand("results/metrics/{model}.json", model=["teacher", *MODELS]),
        splits="results/splits.tsv",
        skipped="results/skipped.tsv",
    output:
        "results/summary.md",
    log:
        "results/logs/summary.log",
    conda:
        "../envs/mirkd.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../workflow_scripts/summary.py"

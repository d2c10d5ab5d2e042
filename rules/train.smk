# Stage 1 (pseudo-labels only), stage 2 (ground truth + selective KD), supervised baseline.
# Resumable state lives in results/work/<model>/ (not a declared output, so Snakemake keeps
# it when a killed job is rerun); it is used only if it was made with the same inputs.

TRAIN_COMMON = {
    "student": config["student"],
    "device": config.get("device", "auto"),
}


rule stage1:
    input:
        shards=[PLAN.shard_path(k) for k in PLAN.shards],
        features=features_of(PLAN.tracks["unlabeled"].values()),
        skipped="results/skipped.tsv",  # fails the run first if too many tracks are bad
    output:
        checkpoint="results/models/stage1.pt",
        history="results/models/stage1_history.json",
    log:
        "results/logs/stage1.log",
    benchmark:
        "results/benchmarks/stage1.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: THREADS
    resources:
        **gpu_resources(),
        mem_mb=RES.get("train_mem_mb", 8000),
        runtime=RES.get("train_runtime", 240),
    params:
        common=TRAIN_COMMON,
        train=config["stage1"],
        shards={
            t.track_id: PLAN.shard_path(PLAN.shard_of(t.track_id))
            for t in PLAN.tracks["unlabeled"].values()
        },
        train_tracks=track_rows(PLAN.in_split("unlabeled", "train")),
        val_tracks=track_rows(PLAN.in_split("unlabeled", "val")),
        work="results/work/stage1",
    script:
        "../workflow_scripts/train.py"


rule stage2:
    input:
        unpack(lambda w: labeled_inputs(config["stage2"].get("use_kd", True))),
        init="results/models/stage1.pt",
    output:
        checkpoint="results/models/stage2.pt",
        history="results/models/stage2_history.json",
    log:
        "results/logs/stage2.log",
    benchmark:
        "results/benchmarks/stage2.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: THREADS
    resources:
        **gpu_resources(),
        mem_mb=RES.get("train_mem_mb", 8000),
        runtime=RES.get("train_runtime", 240),
    params:
        common=TRAIN_COMMON,
        train=config["stage2"],
        train_tracks=track_rows(PLAN.in_split("labeled", "train")),
        val_tracks=track_rows(PLAN.in_split("labeled", "val")),
        teacher_dir="results/teacher/labeled",
        work="results/work/stage2",
    script:
        "../workflow_scripts/train.py"


rule baseline:
    input:
        unpack(lambda w: labeled_inputs(False)),
    output:
        checkpoint="results/models/baseline.pt",
        history="results/models/baseline_history.json",
    log:
        "results/logs/baseline.log",
    benchmark:
        "results/benchmarks/baseline.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: THREADS
    resources:
        **gpu_resources(),
        mem_mb=RES.get("train_mem_mb", 8000),
        runtime=RES.get("train_runtime", 240),
    params:
        common=TRAIN_COMMON,
        train=config["baseline"],
        train_tracks=track_rows(PLAN.in_split("labeled", "train")),
        val_tracks=track_rows(PLAN.in_split("labeled", "val")),
        work="results/work/baseline",
    script:
        "../workflow_scripts/train.py"

# Teacher inference: pseudo-label shards for unlabeled audio, one file per labeled/test track.

TEACHER = {
    "kind": config["teacher"]["kind"],
    "checkpoint": config["teacher"].get("checkpoint"),
    "precision": config["teacher"].get("precision", "fp32"),
    "device": config.get("device", "auto"),
}


rule teacher_shard:
    input:
        audio=lambda w: [ancient(t.audio) for t in PLAN.shard_tracks(int(w.shard))],
        features=lambda w: features_of(PLAN.shard_tracks(int(w.shard))),
    output:
        "results/pseudo/shard_{shard}.h5",
    log:
        "results/logs/teacher/shard_{shard}.log",
    benchmark:
        "results/benchmarks/teacher/shard_{shard}.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: RES.get("teacher_threads", 1)
    resources:
        **gpu_resources(),
        mem_mb=RES.get("teacher_mem_mb", 6000),
        runtime=RES.get("teacher_runtime", 120),
    params:
        teacher=TEACHER,
        tracks=lambda w: track_rows(PLAN.shard_tracks(int(w.shard))),
    script:
        "../workflow_scripts/teacher.py"


rule teacher_track:
    input:
        audio=lambda w: ancient(PLAN.track(w.set, w.track).audio),
        features="results/features/{set}/{track}.h5",
    output:
        "results/teacher/{set}/{track}.h5",
    log:
        "results/logs/teacher/{set}/{track}.log",
    benchmark:
        "results/benchmarks/teacher/{set}/{track}.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: RES.get("teacher_threads", 1)
    resources:
        **gpu_resources(),
        mem_mb=RES.get("teacher_mem_mb", 6000),
        runtime=RES.get("teacher_runtime", 120),
    params:
        teacher=TEACHER,
        tracks=lambda w: track_rows([PLAN.track(w.set, w.track)]),
    script:
        "../workflow_scripts/teacher.py"

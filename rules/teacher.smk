# Teacher inference: pseudo-label shards for unlabeled audio, one file per labeled/test track.
# Shards leave out unlabeled tracks that cannot be decoded; results/skipped.tsv lists them and
# fails the run if more than data.max_skipped_fraction of the unlabeled tracks are bad.

TEACHER = {
    "kind": config["teacher"]["kind"],
    "checkpoint": config["teacher"]["checkpoint"],
    "precision": config["teacher"]["precision"],
    "device": config["device"],
}


rule teacher_shard:
    input:
        audio=lambda w: [ancient(t.audio) for t in PLAN.shard_tracks(int(w.shard))],
        features=lambda w: features_of(PLAN.shard_tracks(int(w.shard))),
    output:
        PLAN.shard_path("{shard}"),
    log:
        "results/logs/teacher/shard_{shard}.log",
    benchmark:
        "results/benchmarks/teacher/shard_{shard}.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: RES["teacher_threads"]
    resources:
        **gpu_resources(),
        mem_mb=RES["teacher_mem_mb"],
        runtime=RES["teacher_runtime"],
    params:
        teacher=TEACHER,
        tracks=lambda w: track_params(PLAN.shard_tracks(int(w.shard))),
        skip_undecodable=True,
    script:
        "../workflow_scripts/teacher.py"


rule teacher_track:
    input:
        audio=lambda w: ancient(PLAN.track(w.set, w.track).audio),
        features=PLAN.features_path("{set}", "{track}"),
    output:
        PLAN.teacher_path("{set}", "{track}"),
    log:
        "results/logs/teacher/{set}/{track}.log",
    benchmark:
        "results/benchmarks/teacher/{set}/{track}.tsv"
    conda:
        "../envs/mirkd.yaml"
    threads: RES["teacher_threads"]
    resources:
        **gpu_resources(),
        mem_mb=RES["teacher_mem_mb"],
        runtime=RES["teacher_runtime"],
    params:
        teacher=TEACHER,
        tracks=lambda w: track_params([PLAN.track(w.set, w.track)]),
        skip_undecodable=False,
    script:
        "../workflow_scripts/teacher.py"


rule skipped:
    input:
        shards=[PLAN.shard_path(k) for k in PLAN.shards],
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

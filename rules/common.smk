# Helpers shared by the rules: lookups into the run plan (PLAN, built in the Snakefile).


wildcard_constraints:
    set="unlabeled|labeled|test",
    model="stage1|stage2|baseline",
    shard=r"\d+",
    vdir=r"(variants/[^/]+/)?",


RES = config.get("resources", {})
THREADS = RES.get("threads", 2)


def gpu_resources():
    """GPU request for teacher/training jobs, from config (none on CPU-only clusters)."""
    if not RES.get("gpu"):
        return {}
    if RES.get("gpu_model"):
        return {"gpu": RES["gpu"], "gpu_model": RES["gpu_model"]}
    return {"gpu": RES["gpu"]}


def track_rows(tracks):
    """(track id, audio, features path, .lab or None, fingerprint) rows for the scripts."""
    return [
        (
            t.track_id,
            t.audio,
            PLAN.features_path(t.set_name, t.track_id),
            t.lab,
            PLAN.fingerprint(t),
        )
        for t in tracks
    ]


def features_of(tracks):
    return [PLAN.features_path(t.set_name, t.track_id) for t in tracks]


def teacher_outputs_of(tracks):
    return [PLAN.teacher_path(t.set_name, t.track_id) for t in tracks]


def labs_of(tracks):
    return [t.lab for t in tracks]


def variant(wildcards):
    """The variant a job belongs to, from its path prefix ("" = the base run)."""
    return PLAN.variant(wildcards.vdir)


def labeled_inputs(wildcards, model):
    """Features and .lab of the variant's labeled train songs and of the validation songs
    (+ teacher outputs of its train songs when the stage distils)."""
    v = variant(wildcards)
    train = PLAN.labeled_train(v)
    tracks = train + PLAN.in_split("labeled", "val")
    inputs = {"features": features_of(tracks), "labs": labs_of(tracks)}
    if model == "stage2" and v.stages["stage2"].get("use_kd", True):
        inputs["teacher"] = teacher_outputs_of(train)
    if model == "stage2":
        inputs["init"] = PLAN.model_path(v, "stage1")
    return inputs


def train_common(wildcards):
    return {
        "student": variant(wildcards).student,
        "device": config.get("device", "auto"),
    }

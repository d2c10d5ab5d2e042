# Helpers shared by the rules: lookups into the run plan (PLAN, built in the Snakefile).


wildcard_constraints:
    set="unlabeled|labeled|test",
    model="stage1|stage2|baseline",
    shard=r"\d+",
    vdir=r"(variants/[^/]+/)?",


RES = config["resources"]  # every default is in config.schema.yaml
THREADS = RES["threads"]


def gpu_resources():
    """GPU request for teacher/training jobs, from config (none on CPU-only clusters)."""
    if not RES["gpu"]:
        return {}
    if RES["gpu_model"]:
        return {"gpu": RES["gpu"], "gpu_model": RES["gpu_model"]}
    return {"gpu": RES["gpu"]}


def track_params(tracks):
    """The tracks as mirkd.manifest.TrackFiles dicts (scripts: TrackFiles.from_params)."""
    return [f.to_param() for f in PLAN.track_files(tracks)]


def features_of(tracks):
    return [PLAN.features_path(t.set_name, t.track_id) for t in tracks]


def teacher_outputs_of(tracks):
    return [PLAN.teacher_path(t.set_name, t.track_id) for t in tracks]


def labs_of(tracks):
    return [t.lab for t in tracks]


def variant(wildcards):
    """The variant a job belongs to, from its path prefix ("" = the base run)."""
    return PLAN.variant(wildcards.vdir)


def distilled_outputs(wildcards, model):
    """Track id -> teacher output of the variant's labeled train songs, when `model` distils."""
    v = variant(wildcards)
    if model != "stage2" or not v.stages["stage2"]["use_kd"]:
        return {}
    return {
        t.track_id: PLAN.teacher_path(t.set_name, t.track_id)
        for t in PLAN.labeled_train(v)
    }


def labeled_inputs(wildcards, model):
    """Features and .lab of the variant's labeled train songs and of the validation songs
    (+ teacher outputs of its train songs when the stage distils)."""
    v = variant(wildcards)
    tracks = PLAN.labeled_train(v) + PLAN.in_split("labeled", "val")
    inputs = {"features": features_of(tracks), "labs": labs_of(tracks)}
    teacher = distilled_outputs(wildcards, model)
    if teacher:
        inputs["teacher"] = list(teacher.values())
    if model == "stage2":
        inputs["init"] = PLAN.model_path(v, "stage1")
    return inputs


def train_common(wildcards):
    return {
        "student": variant(wildcards).student,
        "device": config["device"],
    }

# Helpers shared by the rules: lookups into the run plan (PLAN, built in the Snakefile).


wildcard_constraints:
    set="unlabeled|labeled|test",
    model="stage1|stage2|baseline",
    shard=r"\d+",


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


def labeled_inputs(with_teacher):
    """Features and .lab of labeled train+val songs (+ teacher outputs of train songs)."""
    tracks = PLAN.in_split("labeled", "train") + PLAN.in_split("labeled", "val")
    inputs = {"features": features_of(tracks), "labs": labs_of(tracks)}
    if with_teacher:
        inputs["teacher"] = teacher_outputs_of(PLAN.in_split("labeled", "train"))
    return inputs

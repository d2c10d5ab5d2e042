# Helpers shared by the rules: lookups into the run plan (PLAN, built in the Snakefile).


wildcard_constraints:
    group=r"(unlabeled|labeled|test)-(train|val|test)",
    bucket=r"b[01]*",
    model="|".join(MODELS),
    vdir=r"(variants/[^/]+/)?",
    teacher=r"[a-z0-9]+-[0-9a-f]+",


SINGLE_TEACHER = r"(lvchordia|btc|mirkd)-[0-9a-f]+"  # made by the teacher rule
ENSEMBLE_TEACHER = r"ensemble-[0-9a-f]+"  # made by ensemble_teacher from its members


RES = config["resources"]  # every default is in config.schema.yaml
THREADS = RES["threads"]


def gpu_resources(threads):
    """GPU request for teacher/training jobs, from config (none on CPU-only clusters); the
    job's threads are asked for per GPU (SLURM: --cpus-per-gpu), to feed it."""
    if not RES["gpu"]:
        return {}
    request = {"gpu": RES["gpu"], "cpus_per_gpu": threads}
    if RES["gpu_model"]:
        request["gpu_model"] = RES["gpu_model"]
    return request


def teacher_settings(wildcards):
    """The settings of the job's teacher (by its tag) and the run's device, as params."""
    return {
        **PLAN.teacher_spec(wildcards.teacher).to_dict(),
        "device": config["device"],
    }


def track_params(tracks, teacher=None):
    """The tracks as mirkd.manifest.TrackFiles dicts (scripts: TrackFiles.from_params), with
    the files of the teacher tagged `teacher` (default: the base run's)."""
    return [f.to_param() for f in PLAN.track_files(tracks, teacher)]


def bucket_tracks(wildcards):
    return PLAN.bucket_tracks(wildcards.group, wildcards.bucket)


def bucket_audio(wildcards):
    return [ancient(t.audio) for t in bucket_tracks(wildcards)]


def unlabeled_buckets(wildcards, split):
    """The features and teacher files (the job's variant's teacher) of the unlabeled buckets
    of `split`, as params."""
    tag = variant(wildcards).teacher.tag
    return [b.to_param() for b in PLAN.bucket_files([f"unlabeled-{split}"], tag)]


def labs_of(tracks):
    return [t.lab for t in tracks]


def variant(wildcards):
    """The variant a job belongs to, from its path prefix ("" = the base run)."""
    return PLAN.variant(wildcards.vdir)


def stage1_prior_annotations(wildcards):
    """Annotations of the variant's labeled training songs when stage 1 matches their
    chord-quality distribution (none otherwise)."""
    v = variant(wildcards)
    if v.stages["stage1"]["distribution_match"] <= 0:
        return []
    return labs_of(PLAN.labeled_train(v))


def rehearses(wildcards, model):
    """Whether `model` of the job's variant rehearses pseudo-labeled unlabeled windows."""
    return model == "stage2" and variant(wildcards).stages["stage2"]["rehearsal"] > 0


def rehearsal_buckets(wildcards, model):
    """The unlabeled train buckets stage 2 rehearses on (none without rehearsal), as params."""
    return unlabeled_buckets(wildcards, "train") if rehearses(wildcards, model) else []


def labeled_inputs(wildcards, model):
    """Features and .lab of the variant's labeled train songs and of the validation songs
    (+ teacher outputs of its train songs when the stage distils, + the unlabeled train
    buckets when it rehearses)."""
    v = variant(wildcards)
    tracks = PLAN.labeled_train(v) + PLAN.in_split("labeled", "val")
    inputs = {"features": PLAN.feature_files(tracks), "labs": labs_of(tracks)}
    if v.distils(model):
        inputs["teacher"] = PLAN.teacher_files(PLAN.labeled_train(v), v.teacher.tag)
    if model == "stage2":
        inputs["init"] = PLAN.stage2_init(v)  # this run's stage 1 unless stage2.init
    inputs["rehearsal"] = [
        path for b in rehearsal_buckets(wildcards, model) for path in b.values()
    ]
    return inputs


def train_common(wildcards):
    return {
        "student": variant(wildcards).student,
        "device": config["device"],
    }


BEATS = config["evaluation"]["beats"]  # every default is in config.schema.yaml


def beats_inputs(tracks):
    """The beats files of `tracks` (none with evaluation.beats off)."""
    return sorted(set(PLAN.beats_files(tracks).values())) if BEATS else []


def beats_params(tracks):
    """Params of an evaluation with beats on: track id -> beats file, and the per-beat stay.
    Off: no params at all, so a run made before the option existed does not rerun."""
    if not BEATS:
        return {}
    return {
        "beats": PLAN.beats_files(tracks),
        "beat_stay": config["evaluation"]["beat_stay"],
    }

"""mirkd: teacher pseudo-labels -> stage 1 -> stage 2 with selective KD -> evaluation.

Load and validate the config, decide the tracks, splits and buckets (by hash of each track's
id), and include one rule file per stage. All logic lives in the mirkd library.
"""

from snakemake.utils import min_version, validate

from mirkd.stages import STAGES as MODELS
from mirkd.workflow_plan import UNLABELED_GROUPS as UNLABELED, plan_run

min_version("8.0")


configfile: "config.yaml"


validate(config, "config.schema.yaml", set_default=True)

# The head process walks the data once and leaves a manifest; cluster jobs read it.
PLAN = plan_run(config, results="results", reuse_manifest=not workflow.is_main_process)


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/features.smk"
include: "rules/teacher.smk"
include: "rules/train.smk"
include: "rules/beats.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/release.smk"


# Seconds of work each, reading small files: on a cluster they run on the head node
# instead of waiting in the queue.
localrules:
    splits,
    skipped,
    summary,
    plots,


rule all:
    default_target: True
    input:
        "results/summary.md",
        rules.plots.output,

"""mirkd: teacher pseudo-labels -> stage 1 -> stage 2 with selective KD -> evaluation.

Load and validate the config, decide the tracks, splits and buckets (by hash of each track's
id), and include one rule file per stage. All logic lives in the mirkd library.
"""

import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from mirkd.config_check import check_config, check_config_files
from mirkd.errors import MirkdError
from mirkd.stages import STAGES as MODELS
from mirkd.stale import report_stale, stale_results
from mirkd.workflow_plan import UNLABELED_GROUPS as UNLABELED, plan_run

min_version("8.0")

# A mirkd error (a bad config, data that cannot be planned) is said as its message alone:
# WorkflowError, no traceback.

# Config files are read strictly first: a syntax error with its line, a key given twice.
# (Snakemake reads --configfile before this file: `mirkd check-config FILE` names the line.)
try:
    check_config_files(["config.yaml"] if os.path.isfile("config.yaml") else [])
except MirkdError as exc:
    raise WorkflowError(str(exc)) from None


configfile: "config.yaml"


# Short messages (an unknown key: one line, no schema dump); then Snakemake's validation
# fills the defaults in.
try:
    check_config_files(workflow.configfiles)
    check_config(config, workflow.source_path("config.schema.yaml"))
except MirkdError as exc:
    raise WorkflowError(str(exc)) from None
validate(config, "config.schema.yaml", set_default=True)

# The head process walks the data once and leaves a manifest; cluster jobs read it.
try:
    PLAN = plan_run(
        config, results="results", reuse_manifest=not workflow.is_main_process
    )
except MirkdError as exc:
    raise WorkflowError(str(exc)) from None
if workflow.is_main_process:
    report_stale(PLAN)  # files the plan no longer names: `prune` removes them


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
    prune,


rule all:
    default_target: True
    input:
        "results/summary.md",
        rules.plots.output,


# Not part of `all`: removes the files under results/{features,teacher,work} that the plan
# no longer names (listed at every planning); never data, models or metrics.
rule prune:
    log:
        "results/logs/prune.log",
    conda:
        "envs/mirkd.yaml"
    params:
        stale=lambda w: [str(p) for p in stale_results(PLAN)],
        results="results",
    script:
        "workflow_scripts/prune.py"

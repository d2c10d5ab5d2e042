# The released model (not part of `all`: `snakemake --configfile X release`): the stage-2
# and stage-1 students of the base run (or of release.variant) in float16 with their model
# card; `make release` copies these four files into src/mirkd/released/ (mirkd.release).

from mirkd.manifest import data_root

RELEASE = PLAN.variant_named(config["release"]["variant"])
RELEASE_ROWS = [r for r in PLAN.result_rows() if r["variant"] == RELEASE.label]
SOURCE_MANIFESTS = [
    str(data_root(folder) / "manifest.tsv")
    for folder in config["data"].get("unlabeled") or []
    if (data_root(folder) / "manifest.tsv").is_file()
]


rule release:
    input:
        stage2=PLAN.model_path(RELEASE, "stage2"),
        stage1=PLAN.stage2_init(RELEASE),
        metrics=[r["metrics"] for r in RELEASE_ROWS],
        manifests=SOURCE_MANIFESTS,
    output:
        model="results/release/model.pt",
        stage1="results/release/stage1.pt",
        card="results/release/model_card.json",
        markdown="results/release/MODEL_CARD.md",
    log:
        "results/logs/release.log",
    conda:
        "../envs/mirkd.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        variant=RELEASE.label,
        rows=RELEASE_ROWS,
        data=PLAN.data_summary(RELEASE),
        unlabeled_folders=config["data"].get("unlabeled") or [],
        notes=config["release"]["sources"],
        teacher={"tag": RELEASE.teacher.tag, "settings": RELEASE.teacher.to_dict()},
        stages={**RELEASE.stages, "student": RELEASE.student},
    script:
        "../workflow_scripts/release.py"

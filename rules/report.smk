# Figures of a finished run (results/plots/*.png) and the pieces of `snakemake --report`.
# Captions live in report/; every figure is drawn by mirkd.plots.

PLOT_MODELS = ["teacher", *PLAN.base.models]  # no stage 1 when stage2.init is set
TIMELINE_TRACKS = PLAN.test_tracks[:3]


report: "../report/workflow.rst"


rule plots:
    input:
        metrics=[PLAN.metrics_path(PLAN.base, m) for m in PLOT_MODELS],
        histories=[PLAN.history_path(PLAN.base, m) for m in PLAN.base.models],
        predictions=[PLAN.predictions_path(PLAN.base, m) for m in PLOT_MODELS],
        labs=labs_of(TIMELINE_TRACKS),
        variant_metrics=PLAN.result_metrics(),  # every row the figures read, teachers too
    output:
        table_html=report(
            "results/plots/scores_table.html",
            caption="../report/scores_table.rst",
            category="1. Scores",
            labels={"figure": "scores table"},
        ),
        table_png=report(
            "results/plots/scores_table.png",
            caption="../report/scores_table.rst",
            category="1. Scores",
            labels={"figure": "scores table (PNG)"},
        ),
        quality=report(
            "results/plots/quality_recall.png",
            caption="../report/quality_recall.rst",
            category="1. Scores",
            labels={"figure": "per-quality recall"},
        ),
        confusion=[
            report(
                f"results/plots/confusion_{model}.png",
                caption="../report/confusion.rst",
                category="2. Quality confusion",
                labels={"model": model},
            )
            for model in PLOT_MODELS
        ],
        training=report(
            "results/plots/training_curves.png",
            caption="../report/training_curves.rst",
            category="3. Training",
            labels={"figure": "loss and validation score"},
        ),
        label_efficiency=report(
            "results/plots/label_efficiency.png",
            caption="../report/label_efficiency.rst",
            category="1. Scores",
            labels={"figure": "label efficiency"},
        ),
        timelines=[
            report(
                f"results/plots/timeline_{t.track_id}.png",
                caption="../report/timeline.rst",
                category="4. Chord timelines",
                labels={"song": t.track_id},
            )
            for t in TIMELINE_TRACKS
        ],
    log:
        "results/logs/plots.log",
    conda:
        "../envs/mirkd.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        metrics={m: PLAN.metrics_path(PLAN.base, m) for m in PLOT_MODELS},
        histories={m: PLAN.history_path(PLAN.base, m) for m in PLAN.base.models},
        predictions={m: PLAN.predictions_path(PLAN.base, m) for m in PLOT_MODELS},
        timelines=[(t.track_id, t.lab) for t in TIMELINE_TRACKS],
        result_rows=PLAN.result_rows(),
        val_metrics=PLAN.base.selection_metrics(),
    script:
        "../workflow_scripts/plots.py"

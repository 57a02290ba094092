# Two commands set everything up on a fresh machine (each installs what it needs):
#   make quickstart   CPU replication on real data: the committed cpu-profile Fashion-MNIST model, one
#                     30,000-step walk-jump chain, scored; results in results/local/ (RETRAIN=1 trains from scratch)
#   make test         the test suite (starts the one-node SLURM of slurm/local-cluster.sh when it can)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: quickstart test data slurm
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

data:
	@test -d /usr/share/datasets/fashion-mnist || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	  else echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' or 'python replicate.py --download fashion-mnist'"; fi; }

slurm:
	@bash slurm/local-cluster.sh start || echo "SLURM not started: the tests marked 'slurm' will be skipped"

QUICKSTART := --table fashion-mnist --profile cpu --set chain.steps=30000 --results results/local --threads 1

quickstart: $(VENV)/.installed data
	$(PY) replicate.py $(QUICKSTART) $(if $(RETRAIN),--retrain)

test: $(VENV)/.installed data slurm
	$(PY) -m pytest -q -rs

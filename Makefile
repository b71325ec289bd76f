# Regenerate every figure and table in docs/ (each script names itself next to its figure).
PY ?= python

.PHONY: docs-figures docs test lint

docs-figures:
	$(PY) apps/docs_figures/concepts.py --out docs/img
	$(PY) benchmarks/model_zoo.py
	$(PY) benchmarks/bench_layers.py --markdown docs/bench_layers.md
	$(PY) benchmarks/bench_models.py --markdown docs/bench_models.md

docs:
	mkdocs build --strict

test:
	$(PY) -m pytest -q

lint:
	ruff check . && ruff format --check .

# Regenerate every figure and table in docs/. Each page names the command behind each figure;
# this is the list of them. Measured tables are spliced into their page between
# <!-- generated: NAME --> markers (apps/docs_figures/splice.py). Run from the repository root.
#
#   make docs-figures         everything (about an hour on 2 CPU cores)
#   make docs-figures-quick   only what needs no training (a few minutes)
#
# FSDD-based figures read ../shared/data/fsdd unless FSDD=... says otherwise. The TFLite Micro
# latencies and compact-model arena in docs/deploy.md need KQ_TFLM_ROOT (a built TFLite Micro
# checkout, see docs/deploy.md); without it those cells say so. The PANNs golden check in
# docs/transfer.md reads ../shared/data/panns unless PANNS=... says otherwise.
PY ?= python
FSDD ?= ../shared/data/fsdd
PANNS ?= ../shared/data/panns
OUT := build/figures
SPLICE := $(PY) apps/docs_figures/splice.py

.PHONY: docs-figures docs-figures-quick figures-exact figures-timed figures-trained docs test lint

docs-figures: figures-exact figures-timed figures-trained

docs-figures-quick: figures-exact

# exact counts, drawings and generated text: identical on every machine
figures-exact:
	mkdir -p $(OUT)
	$(PY) apps/docs_figures/concepts.py --out docs/img
	$(PY) benchmarks/model_zoo.py --out docs/model_zoo.md
	$(PY) apps/docs_figures/errors.py --out docs/troubleshooting.md
	$(PY) tflite/frontend/gen_config.py
	$(PY) tflite/frontend/parity_report.py --memory > $(OUT)/parity_memory.md
	$(SPLICE) docs/frontend.md parity_memory $(OUT)/parity_memory.md

# timings: ratios from one run on this machine
figures-timed:
	mkdir -p $(OUT)
	$(PY) benchmarks/bench_layers.py --repeats 10 --sweep 16,32,64,128,256,512,1024 \
		--out $(OUT)/bench_layers.md
	$(SPLICE) docs/models.md bench_layers $(OUT)/bench_layers.md
	$(PY) benchmarks/bench_models.py --repeats 5 --out $(OUT)/bench_models.md
	$(SPLICE) docs/models.md bench_models $(OUT)/bench_models.md
	$(PY) benchmarks/bench_models.py --pair qcnn14:cnn14:1 --qconv-algorithm both --repeats 3 \
		--out $(OUT)/bench_models_fast.md
	$(SPLICE) docs/models.md bench_models_fast $(OUT)/bench_models_fast.md
	$(PY) benchmarks/bench_pruning.py --out $(OUT)/bench_pruning.md
	$(SPLICE) docs/pruning.md bench_pruning $(OUT)/bench_pruning.md
	$(PY) benchmarks/bench_data.py --out $(OUT)/bench_data.md \
		--json $(OUT)/bench_data.json
	$(SPLICE) docs/training.md bench_data $(OUT)/bench_data.md
	$(PY) benchmarks/panns_golden.py --panns-dir $(PANNS) --out $(OUT)/panns_golden.md
	$(SPLICE) docs/transfer.md panns_golden $(OUT)/panns_golden.md

# trained on real recordings (FSDD)
figures-trained:
	mkdir -p $(OUT)
	$(PY) tflite/frontend/parity_report.py --data-dir $(FSDD) > $(OUT)/parity.md
	$(SPLICE) docs/frontend.md parity $(OUT)/parity.md
	$(PY) benchmarks/bench_export.py --data-dir $(FSDD) --out $(OUT)/bench_export.md
	$(SPLICE) docs/deploy.md bench_export $(OUT)/bench_export.md
	kq-train --dataset fsdd --data-dir $(FSDD) --out $(OUT)/fsdd-qcnn6 --restart
	cp $(OUT)/fsdd-qcnn6/training_curves.png docs/img/training_fsdd_curves.png
	cp $(OUT)/fsdd-qcnn6/confusion_matrix.png docs/img/training_fsdd_confusion.png
	$(PY) benchmarks/tune_recipe.py --data-dir $(FSDD) --out $(OUT)/tune \
		--table $(OUT)/tune_recipe.md
	$(SPLICE) docs/training.md tune_recipe $(OUT)/tune_recipe.md
	$(PY) benchmarks/tune_recipe.py --data-dir $(FSDD) --out $(OUT)/tune --group speaker \
		--table $(OUT)/tune_speaker.md
	$(SPLICE) docs/training.md tune_speaker $(OUT)/tune_speaker.md
	$(PY) benchmarks/tune_recipe.py --data-dir $(FSDD) --out $(OUT)/tune --group decay \
		--table $(OUT)/tune_decay.md
	$(SPLICE) docs/training.md tune_decay $(OUT)/tune_decay.md
	$(PY) benchmarks/tune_recipe.py --data-dir $(FSDD) --out $(OUT)/tune --group average \
		--table $(OUT)/tune_average.md --plot docs/img/tune_average.png
	$(SPLICE) docs/training.md tune_average $(OUT)/tune_average.md
	$(PY) benchmarks/bench_ema.py --out $(OUT)/bench_ema.md
	$(SPLICE) docs/training.md bench_ema $(OUT)/bench_ema.md
	$(PY) benchmarks/bench_qcnn_vs_cnn.py --data-dir $(FSDD) --work-dir $(OUT)/qcnn_vs_cnn \
		--models qcnn6:0.25,cnn6:0.25,cnn6:0.125 --threads 1 --levels \
		--out $(OUT)/qcnn_vs_cnn.md --json $(OUT)/qcnn_vs_cnn.json
	$(SPLICE) docs/training.md qcnn_vs_cnn $(OUT)/qcnn_vs_cnn.md
	$(PY) benchmarks/bench_qcnn_vs_cnn.py --data-dir $(FSDD) --work-dir $(OUT)/qcnn_vs_cnn \
		--models qcnn6:0.25,cnn6:0.25,cnn6:0.125 --gain-db 0 --threads 1 --levels \
		--out $(OUT)/qcnn_vs_cnn_gain0.md
	$(SPLICE) docs/training.md qcnn_vs_cnn_gain0 $(OUT)/qcnn_vs_cnn_gain0.md
	$(PY) benchmarks/bench_qcnn_vs_cnn.py --data-dir $(FSDD) --work-dir $(OUT)/qcnn_vs_cnn \
		--models qcnn6:0.25,cnn6:0.25,cnn6:0.125 --ema 0 --gain-db 0 --threads 1 \
		--out $(OUT)/qcnn_vs_cnn_ema0.md
	$(SPLICE) docs/training.md qcnn_vs_cnn_ema0 $(OUT)/qcnn_vs_cnn_ema0.md
	$(PY) benchmarks/bench_qcnn_vs_cnn.py --data-dir $(FSDD) --work-dir $(OUT)/qcnn_vs_cnn \
		--models qcnn6:0.25,cnn6:0.25,cnn6:0.125 --weight-decay 0 --ema 0 --gain-db 0 \
		--threads 1 \
		--out $(OUT)/qcnn_vs_cnn_wd0.md
	$(SPLICE) docs/training.md qcnn_vs_cnn_wd0 $(OUT)/qcnn_vs_cnn_wd0.md
	$(PY) benchmarks/bench_qcnn_vs_cnn.py --data-dir $(FSDD) --work-dir $(OUT)/qcnn_vs_cnn \
		--epochs 20 --no-spec-augment --weight-decay 0 --ema 0 --gain-db 0 \
		--out $(OUT)/qcnn_vs_cnn_20.md \
		--plot docs/img/qcnn_vs_cnn_fsdd.png
	$(SPLICE) docs/training.md qcnn_vs_cnn_20 $(OUT)/qcnn_vs_cnn_20.md
	$(PY) benchmarks/bench_qcnn_vs_cnn.py --data-dir $(FSDD) --work-dir $(OUT)/qcnn_vs_cnn \
		--protocol refit --models qcnn6:0.25 --weight-decay 0 --ema 0 --gain-db 0 --threads 1 \
		--out $(OUT)/speaker_refit.md \
		--json $(OUT)/speaker_refit.json
	$(SPLICE) docs/training.md speaker_refit $(OUT)/speaker_refit.md
	$(PY) benchmarks/bench_qcnn_vs_cnn.py --data-dir $(FSDD) --work-dir $(OUT)/qcnn_vs_cnn \
		--protocol refit --models qcnn6:0.25 --threads 1 --out $(OUT)/speaker_refit_default.md \
		--json $(OUT)/speaker_refit_default.json
	$(SPLICE) docs/training.md speaker_refit_default $(OUT)/speaker_refit_default.md
	$(PY) benchmarks/bench_recipe.py --data-dir $(FSDD) --work-dir $(OUT)/recipe --threads 1 \
		--speaker-json $(OUT)/qcnn_vs_cnn.json --speaker-json $(OUT)/speaker_refit_default.json \
		--out $(OUT)/recipe.md
	$(SPLICE) docs/training.md recipe_targets $(OUT)/recipe.md
	$(PY) apps/paper_recipe.py --dataset fsdd --data-dir $(FSDD) --width 0.125 \
		--n-mels 32 --layers conv_block2_conv1,conv_block3_conv1,conv_block4_conv1 \
		--epochs 12 --finetune-epochs 2 --batch-size 64 --lr 0.003 --finetune-lr 0.001 \
		--no-spec-augment --ema 0 --gain-db 0 --tflite per-architecture --out $(OUT)/paper_recipe
	$(SPLICE) docs/compression.md paper_recipe $(OUT)/paper_recipe/results.md
	cp $(OUT)/paper_recipe/accuracy_vs_macs.png docs/img/paper_recipe_fsdd.png
	$(PY) benchmarks/bench_opnorm_order.py --data-dir $(FSDD) --work-dir $(OUT)/opnorm_order \
		--out $(OUT)/opnorm_order.md
	$(SPLICE) docs/pruning.md opnorm_order $(OUT)/opnorm_order.md

docs:
	mkdocs build --strict

test:
	$(PY) -m pytest -q

lint:
	ruff check . && ruff format --check .

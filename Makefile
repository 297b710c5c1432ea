# Two commands do all the set-up on a fresh machine (Python 3.11):
#   make test   create .venv, install requirements.txt, run the test suite (make test-fast: no ACT run)
#   make demo   create .venv, generate the demo data, compress the bundled PP-OCRv4 mobile
#               det and rec models to int8 on the CPU (output/demo/det, output/demo/rec)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DATA := ocr_data/demo

.PHONY: setup data demo bench test test-fast clean icdar2015 real gpu-check

setup: $(VENV)/.installed

# Re-install only when requirements.txt changes.
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

data: $(DEMO_DATA)/rec/eval.txt

$(DEMO_DATA)/rec/eval.txt: | setup
	$(PY) -m ocr_data.synth --out $(DEMO_DATA) --seed 0 --overwrite

# --overwrite: re-running the demo replaces its own earlier results
demo: setup data
	$(PY) run.py -c configs/ppocrv4/det_mobile.yaml --save_dir output/demo/det --overwrite
	$(PY) run.py -c configs/ppocrv4/rec_mobile.yaml --save_dir output/demo/rec --overwrite

# Real data (not needed by demo or test): ICDAR2015 in PaddleOCR format, a folder ICDAR2015 that
# holds det/train.txt (+ images) and rec/train.txt (crops named <image stem>_<k>.png; cut them from
# the det labels with ocr_data/icdar2015.py crop). `make icdar2015` writes ocr_data/icdar2015/
# {det,rec}/{train,dev}.txt (a fixed 20% dev split by image name, nothing copied); `make real`
# compresses the bundled models with the real-data recipes (train on train, choose on dev).
ICDAR2015 ?=
icdar2015: setup
	@test -n "$(ICDAR2015)" || { echo "error: set ICDAR2015=folder with det/train.txt and rec/train.txt (see ocr_data/README.md)"; exit 2; }
	$(PY) ocr_data/icdar2015.py split --det_label $(ICDAR2015)/det/train.txt --rec_label $(ICDAR2015)/rec/train.txt \
		--out ocr_data/icdar2015 --overwrite

real: setup
	@test -f ocr_data/icdar2015/det/dev.txt || { echo "error: no ocr_data/icdar2015/det/dev.txt: run make icdar2015 ICDAR2015=... first"; exit 2; }
	$(PY) run.py -c configs/ppocrv4/det_icdar2015.yaml --save_dir output/icdar2015/det --overwrite
	$(PY) run.py -c configs/ppocrv4/rec_icdar2015.yaml --save_dir output/icdar2015/rec --overwrite

# Deployment benchmark of the demo models (run make demo first): FP32 vs our int8 vs the
# onnxruntime and NNCF PTQ peers, on Paddle Inference, onnxruntime and OpenVINO (f32, and bf16 where
# the CPU has it), 2 threads; then the whole
# det -> crop -> rec pipeline for the FP32 and int8 pairs. Results in output/demo/report.
DET_ARGS := -c configs/ppocrv4/det_mobile.yaml
REC_ARGS := -c configs/ppocrv4/rec_mobile.yaml
bench: setup data
	$(PY) bench.py $(DET_ARGS) --model_dir bundled:ch_PP-OCRv4_det_infer --model_dir output/demo/det \
		--backend paddle onnxruntime openvino openvino-bf16 --peer --repeat 3 --json output/demo/bench_det.json --quiet
	$(PY) bench.py $(REC_ARGS) --model_dir bundled:ch_PP-OCRv4_rec_infer --model_dir output/demo/rec \
		--backend paddle onnxruntime openvino openvino-bf16 --peer --json output/demo/bench_rec.json --quiet
	# the int8 pair on auto only: a runtime may not be offered for an int8 model on this CPU kind
	for backend in auto paddle onnxruntime openvino; do \
	  $(PY) eval.py --e2e $(DET_ARGS) --rec_config configs/ppocrv4/rec_mobile.yaml --backend $$backend \
		--json output/demo/e2e_fp32_$$backend.json --quiet || exit 1; \
	done
	$(PY) eval.py --e2e $(DET_ARGS) --rec_config configs/ppocrv4/rec_mobile.yaml --backend auto \
		--model_dir output/demo/det --rec_model_dir output/demo/rec --json output/demo/e2e_int8_auto.json --quiet
	$(PY) -m ocrslim.deploy.report --overwrite --out output/demo/report output/demo/bench_det.json output/demo/bench_rec.json \
		output/demo/e2e_*.json

# TEST_JOBS pytest-xdist workers (tests/conftest.py keeps each ACT run's tests on one of them);
# TEST_JOBS=0 runs everything in this process
TEST_JOBS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_JOBS) --dist loadgroup
test: setup
	$(PY) -m ocrslim.cpu
	$(PYTEST) --durations=15 tests

# the edit loop: every test but the ACT runs and what needs their models (under 2 min)
test-fast: setup
	$(PYTEST) -m "not slow" tests

# On a machine with an NVIDIA GPU (never run by this project: it has no GPU): its own venv
# .venv-gpu with paddlepaddle-gpu, then tiny det/rec compression, eval, bench (TensorRT) and
# launch --gpus 0, each time-limited, 8 min in all on one GPU (plus the one-time install);
# output/gpu_check/summary.json. Without a GPU it prints "no GPU" and does nothing.
gpu-check:
	$(PYTHON) -m ocrslim.gpu_check

clean:
	rm -rf output $(DEMO_DATA)

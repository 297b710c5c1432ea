# Two commands do all the set-up on a fresh machine (Python 3.11):
#   make test   create .venv, install requirements.txt, run the test suite
#   make demo   create .venv, generate the demo data, compress the bundled PP-OCRv4 mobile
#               det and rec models to int8 on the CPU (output/demo/det, output/demo/rec)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DATA := ocr_data/demo

.PHONY: setup data demo test clean

setup: $(VENV)/.installed

# Re-install only when requirements.txt changes.
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

data: $(DEMO_DATA)/rec/eval.txt

$(DEMO_DATA)/rec/eval.txt: | setup
	$(PY) ocr_data/synth.py --out $(DEMO_DATA) --seed 0 --overwrite

# --overwrite: re-running the demo replaces its own earlier results
demo: setup data
	$(PY) run.py -c configs/ppocrv4/det_mobile.yaml --save_dir output/demo/det --overwrite
	$(PY) run.py -c configs/ppocrv4/rec_mobile.yaml --save_dir output/demo/rec --overwrite

test: setup
	$(PY) -m pytest -q tests

clean:
	rm -rf output $(DEMO_DATA)

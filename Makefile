# Two commands do all the set-up on a fresh machine (Python 3.11):
#   make test   create .venv, install requirements.txt, run the test suite
#   make demo   create .venv, generate the demo data, evaluate (and compress) the bundled models
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

demo: setup data
	$(PY) eval.py -c configs/ppocrv4/det_mobile.yaml --json output/demo/fp32_det.json
	$(PY) eval.py -c configs/ppocrv4/rec_mobile.yaml --json output/demo/fp32_rec.json

test: setup
	$(PY) -m pytest -q tests

clean:
	rm -rf output $(DEMO_DATA)

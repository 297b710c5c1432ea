"""Evaluate a PaddleOCR det or rec inference model (FP32 or int8).

usage:
  python eval.py -c configs/ppocrv4/det_mobile.yaml
  python eval.py -c configs/ppocrv4/rec_mobile.yaml --model_dir output/demo/rec --json rec.json
"""
import ocrslim  # noqa: F401  (first: binds zlib before paddle is imported)
from ocrslim.errors import run_cli
from ocrslim.eval_cli import main

if __name__ == "__main__":
    run_cli(main)

"""Evaluate a PaddleOCR det or rec inference model (FP32 or int8).

usage:
  python eval.py -c configs/ppocrv4/det_mobile.yaml
  python eval.py -c configs/ppocrv4/rec_mobile.yaml --model_dir output/demo/rec --json rec.json
"""
from ocrslim.commands import evaluate  # imports ocrslim first: binds zlib before paddle is imported

if __name__ == "__main__":
    evaluate()

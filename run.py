"""Compress a PaddleOCR det or rec inference model to int8 with PaddleSlim ACT.

usage:
  python run.py -c configs/ppocrv4/det_mobile.yaml --save_dir output/demo/det
  python -m paddle.distributed.launch --gpus 0,1,2,3 run.py -c CONFIG --save_dir DIR --devices gpu
"""
import ocrslim  # noqa: F401  (first: binds zlib before paddle is imported)
from ocrslim.errors import run_cli
from ocrslim.run_cli import main

if __name__ == "__main__":
    run_cli(main)

"""Compress a PaddleOCR det or rec inference model to int8 with PaddleSlim ACT.

usage:
  python run.py -c configs/ppocrv4/det_mobile.yaml --save_dir output/demo/det
  python -m paddle.distributed.launch --gpus 0,1,2,3 run.py -c CONFIG --save_dir DIR --devices gpu
"""
from ocrslim.commands import run  # imports ocrslim first: binds zlib before paddle is imported

if __name__ == "__main__":
    run()

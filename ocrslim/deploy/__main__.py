"""python -m ocrslim.deploy MODEL_DIR OUT_DIR: the rewritten int8 program for Paddle Inference."""
from ..errors import run_cli
from .paddle_passes import main

run_cli(main)

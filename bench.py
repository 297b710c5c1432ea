"""Benchmark det/rec models with Paddle Inference and onnxruntime: latency, size, metric.

See ocrslim/deploy/bench.py or `python bench.py --help`.
"""
import ocrslim  # noqa: F401  (first: binds zlib before paddle is imported)
from ocrslim.deploy.bench import main
from ocrslim.errors import run_cli

if __name__ == "__main__":
    run_cli(main)

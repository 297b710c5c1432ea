"""Benchmark det/rec models with Paddle Inference and onnxruntime: latency, size, metric.

See ocrslim/deploy/bench.py or `python bench.py --help`.
"""
from ocrslim.commands import bench  # imports ocrslim first: binds zlib before paddle is imported

if __name__ == "__main__":
    bench()

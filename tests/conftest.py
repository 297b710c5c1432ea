import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.chdir(ROOT)  # configs use paths relative to the repo root

import ocrslim  # noqa: E402,F401  (binds zlib before any test imports paddle)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs on real models (minutes)")

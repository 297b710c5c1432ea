"""Compression: the strategy registry (strategies.py) and what its strategies are made of.

strategies.py  qat, ptq: step 2 of run.py
calibrate.py   post-training calibration (Paddle's PostTrainingQuantization)
qat.py         ACT quantization-aware training + distillation, from calibrated scales
act_compat.py  every private PaddleSlim/Paddle name used, checked at start-up
"""

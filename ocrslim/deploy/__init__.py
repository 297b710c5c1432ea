"""The deployment half: how a model runs where users run it, and what that measures.

backends       registry of runtimes (Paddle Inference, onnxruntime), their per-CPU settings and
               the measured `auto` choice; save_dir/deploy and load_predictor
runtime        the predictors themselves, the ONNX export, what the executor really quantizes
paddle_graph   the one indexed graph of a Paddle program (every Paddle program internal is used there)
onnx_graph     the one graph of an ONNX model
paddle_passes  ordered rewrites of an int8 Paddle program for Paddle Inference (python -m ocrslim.deploy)
onnx_passes    ordered rewrites of a paddle2onnx int8 export for onnxruntime
peer           the onnxruntime PTQ baseline a user would try instead of us
bench, e2e     bench.py and eval.py --e2e; report: report.md / report.png
profile        python -m ocrslim.deploy.profile: one model on one runtime, node by node
examples       the report's pictures of what int8 changed, from the predictions bench scored
"""

"""The way in: models in other formats than Paddle 2.x's, converted to a Paddle 2.6 inference model.

    pir.convert(model_dir, out_dir)       PaddleOCR 3.x inference.json + .pdiparams (PP-OCRv5, v6)
    onnx_in.convert(onnx_path, out_dir)   ONNX (Baidu's PP-OCRv6 releases)

Both write out_dir/inference.pdmodel + inference.pdiparams, which everything after the
way in (eval, PaddleSlim, Paddle Inference, paddle2onnx, OpenVINO) reads; builder.py is
what they share. Nothing here imports compress/ or deploy/.
"""

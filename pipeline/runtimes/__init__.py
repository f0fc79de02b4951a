"""Runtimes: a model loaded in ONNX Runtime, OpenVINO or Paddle Inference, ready to run batches.

Each module imports its runtime at the top and is imported only when an engine opens a model
(`pipeline.options.engines`), so that composing a config loads none of them. Settings arrive as
plain values: this layer knows nothing of the config classes.
"""

"""Options: the typed config, and each device, precision and engine chosen by name.

Light to import: an engine opens its runtime (onnxruntime, openvino, paddle) only when asked to.
"""

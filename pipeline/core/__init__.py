"""The bottom layer: errors, files, the content cache, datasets, tokenizers, the CPU.

It imports nothing from the layers above it (options, stages, runner, tracking, serving).
"""

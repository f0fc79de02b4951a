"""The pipeline's stages, in order: export, convert, optimize, infer, evaluate."""

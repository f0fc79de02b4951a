"""Paddle 2.x users have `.pdmodel` exports: the convert stage takes them too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pipeline.options.config import ConvertConfig
from pipeline.stages.convert import convert, find_model_files

# Paddle 3 writes the legacy program format only with the PIR API off, set before import.
LEGACY_EXPORT = """
import sys
import paddle

class Classifier(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.embedding = paddle.nn.Embedding(100, 16)
        self.head = paddle.nn.Linear(16, 2)

    def forward(self, input_ids, token_type_ids):
        return self.head((self.embedding(input_ids) + self.embedding(token_type_ids)).mean(axis=1))

paddle.seed(0)
model = Classifier()
model.eval()
spec = [paddle.static.InputSpec([None, None], "int64", name) for name in ("input_ids", "token_type_ids")]
paddle.jit.save(paddle.jit.to_static(model, input_spec=spec), sys.argv[1])
"""


def test_legacy_pdmodel_export_converts_and_runs(tmp_path: Path) -> None:
    prefix = tmp_path / "export" / "float32"
    env = {**os.environ, "FLAGS_enable_pir_api": "0"}
    script = tmp_path / "export_legacy.py"  # to_static reads the model's source: a file, not -c
    script.write_text(LEGACY_EXPORT)
    subprocess.run([sys.executable, str(script), str(prefix)], env=env, check=True, timeout=300)
    files = find_model_files(prefix)
    assert files.graph.suffix == ".pdmodel"
    before = sorted(p.name for p in prefix.parent.iterdir())
    onnx_path = convert(prefix, ConvertConfig(), tmp_path / "cache")
    assert sorted(p.name for p in prefix.parent.iterdir()) == before  # nothing written beside it
    ids = np.array([[1, 5, 7, 2]], dtype=np.int64)
    session = ort.InferenceSession(str(onnx_path))
    logits = session.run(None, {"input_ids": ids, "token_type_ids": np.zeros_like(ids)})[0]
    assert logits.shape == (1, 2) and np.isfinite(logits).all()

"""The MLflow pyfunc model, as code (MLflow's "models from code"): raw texts in, labels out.

MLflow loads this file by path and takes the model `set_model` names; nothing is pickled. The
model's artifacts are the ONNX file, the tokenizer folder, label.txt and settings.json (batch
size, max_seq_length, padding, tokenizer kind, threads); it runs them with the pipeline's own
tokenizer and batching (sorted by length, padded per batch, order kept) on ONNX Runtime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


def texts_of(model_input: Any) -> list[str]:
    """Texts from what pyfunc callers send: a list, a Series, or a DataFrame's first column."""
    if isinstance(model_input, pd.DataFrame):
        column = "text" if "text" in model_input.columns else model_input.columns[0]
        values = model_input[column].tolist()
    elif isinstance(model_input, pd.Series | np.ndarray):
        values = list(model_input)
    else:
        values = list(model_input)
    return [str(value) for value in values]


class ErnieTextClassifier(PythonModel):
    def load_context(self, context: Any) -> None:
        from pipeline.core.data import read_labels
        from pipeline.core.tokenizer import load_tokenizer
        from pipeline.options.config import InferConfig
        from pipeline.runtimes.onnxruntime import OnnxRuntimeSession, SessionSettings

        artifacts = context.artifacts
        self.settings = json.loads(Path(artifacts["settings"]).read_text(encoding="utf-8"))
        label_file = Path(artifacts["labels"])
        self.labels = read_labels(label_file.parent, label_file.name)
        self.tokenizer = load_tokenizer(artifacts["tokenizer"], self.settings["tokenizer"])
        self.engine = OnnxRuntimeSession(
            Path(artifacts["model"]),
            SessionSettings(threads=self.settings["num_threads"]),
            self.settings["batch_size"],
            self.settings["max_seq_length"],
        )
        self.options = InferConfig(
            tokenizer=self.settings["tokenizer"], padding=self.settings["padding"], warmup_batches=0
        )

    def predict(self, context: Any, model_input: Any, params: dict | None = None) -> pd.DataFrame:
        from pipeline.stages.infer import infer, softmax

        texts = texts_of(model_input)
        columns = ["label", "confidence", *(f"prob_{label}" for label in self.labels)]
        if not texts:
            return pd.DataFrame(columns=columns)
        result = infer(
            texts,
            self.tokenizer,
            self.engine,
            self.options,
            batch_size=self.settings["batch_size"],
            max_seq_length=self.settings["max_seq_length"],
            desc="predict",
            progress=False,
        )
        probabilities = softmax(result.logits)
        best = probabilities.argmax(axis=-1)
        frame = pd.DataFrame(
            {"label": [self.labels[i] for i in best], "confidence": probabilities[np.arange(len(best)), best]}
        )
        for i, label in enumerate(self.labels):
            frame[f"prob_{label}"] = probabilities[:, i]
        return frame


mlflow.models.set_model(ErnieTextClassifier())

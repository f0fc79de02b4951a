"""The MLflow pyfunc model, as code (MLflow's "models from code"): raw texts in, labels out.

MLflow loads this file by path and takes the model `set_model` names; nothing is pickled. The
model's artifacts are the ONNX file, the tokenizer folder, label.txt and settings.json (batch
size, max_seq_length, padding, tokenizer kind, threads); it runs them with the pipeline's own
tokenizer and batching (sorted by length, padded per batch, order kept) on ONNX Runtime.

`predict` takes a list and says so by its type hints: MLflow then passes the request's `inputs`
through as sent. With a column signature its scoring server turns [123, null] into the texts
"123" and "None" before the model sees them, and refuses an empty list; this way a value that is
not text is refused by position and type (HTTP 400) and no texts give no predictions.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

# How many refused inputs a refusal names: a client that sent 10,000 numbers needs the first few.
NAMED_REFUSALS = 10


def json_type(value: Any) -> str:
    """`value`'s type as a JSON client names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before numbers: a bool is an int to Python
        return "a boolean"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def texts_of(values: list[Any]) -> list[str]:
    """The texts, or a refusal naming every input that is not one (MLflow answers it with 400).

    Nothing is turned into text: str(None) would be classified as the text "None".
    """
    refused = [f"inputs[{i}] is {json_type(v)}" for i, v in enumerate(values) if not isinstance(v, str)]
    if refused:
        more = f" and {len(refused) - NAMED_REFUSALS} more" if len(refused) > NAMED_REFUSALS else ""
        raise MlflowException(
            f"{', '.join(refused[:NAMED_REFUSALS])}{more}: expected text (a JSON string) for every input",
            error_code=INVALID_PARAMETER_VALUE,
        )
    return values


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

    def predict(self, model_input: list[Any], params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One {label, confidence, prob_<label>...} per text, in input order."""
        from pipeline.stages.infer import infer, softmax

        texts = texts_of(model_input)
        if not texts:
            return []
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
        return [
            {
                "label": self.labels[int(row.argmax())],
                "confidence": float(row.max()),
                **{f"prob_{label}": float(p) for label, p in zip(self.labels, row, strict=True)},
            }
            for row in probabilities
        ]


mlflow.models.set_model(ErnieTextClassifier())

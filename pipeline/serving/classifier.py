"""The MLflow pyfunc model, as code (MLflow's "models from code"): raw texts in, labels out.

MLflow loads this file by path and takes the model `set_model` names; nothing is pickled. The
model's artifacts are the ONNX file, the tokenizer folder, label.txt and settings.json (the task,
batch size, max_seq_length, padding, tokenizer kind, threads); it runs them with the pipeline's own
tokenizer and batching (sorted by length, padded per batch, order kept) on ONNX Runtime.

What an input is and what comes back is the task's (pipeline/options/tasks/): a text per input for
multi_class, multi_label and hierarchical models, `[text_a, text_b]` for pair models; `{label,
confidence, prob_<label>...}` or `{labels, scores}` per input (docs/serving.md).

`predict` takes a list and says so by its type hints: MLflow then passes the request's `inputs`
through as sent. With a column signature its scoring server turns [123, null] into the texts
"123" and "None" before the model sees them, and refuses an empty list; this way an input that is
not what the task reads is refused by position and type (HTTP 400) and no inputs give no predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

# Models registered before tasks existed were multi-class.
DEFAULT_TASK = {"name": "multi_class"}


class Refused(MlflowException):
    """A request the task cannot read: HTTP 400 whose message is the task's one line.

    MLflow's scoring server writes the whole request in front of a model's error message ("Failed
    to predict data '...'"): a megabyte of text refused would come back as a megabyte of error. The
    refusal already names each input by position and type, so this message keeps to it.
    """

    def __init__(self, refusal: str) -> None:
        self._refusal = refusal
        super().__init__(refusal, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._refusal

    @message.setter
    def message(self, value: str) -> None:
        """MLflow's own prefix (and MlflowException's assignment) leave the refusal as it is."""


class ErnieTextClassifier(PythonModel):
    def load_context(self, context: Any) -> None:
        from pipeline.core.tokenizer import load_tokenizer
        from pipeline.options.config import InferConfig
        from pipeline.options.tasks import TASKS
        from pipeline.runtimes.onnxruntime import OnnxRuntimeSession, SessionSettings

        artifacts = context.artifacts
        self.settings = json.loads(Path(artifacts["settings"]).read_text(encoding="utf-8"))
        task = self.settings.get("task") or DEFAULT_TASK
        self.task = TASKS.get(task["name"])(**task)
        label_file = Path(artifacts["labels"])
        self.labels = self.task.read_labels(label_file.parent, label_file.name)
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

    def predict(
        self, context: Any, model_input: list[Any], params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """What the task predicts for each input, in input order."""
        from pipeline.core.errors import InputError
        from pipeline.stages.infer import infer

        try:
            inputs = self.task.served_inputs(model_input)
        except InputError as exc:
            raise Refused(str(exc)) from None
        if not len(inputs):
            return []
        result = infer(
            inputs,
            self.tokenizer,
            self.engine,
            self.options,
            batch_size=self.settings["batch_size"],
            max_seq_length=self.settings["max_seq_length"],
            desc="predict",
            progress=False,
        )
        return self.task.served_outputs(self.task.probabilities(result.logits), self.labels)


mlflow.models.set_model(ErnieTextClassifier())

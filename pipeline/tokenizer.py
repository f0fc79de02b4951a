"""Text -> token ids, with PaddleNLP's tokenizer as the reference implementation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ModelError


@dataclass(frozen=True)
class Encoded:
    """Token ids per text (with [CLS]/[SEP]), truncated to max_seq_length."""

    input_ids: list[list[int]]
    n_truncated: int
    pad_id: int


class PaddleNLPTokenizer:
    def __init__(self, name_or_path: str) -> None:
        from paddlenlp.transformers import AutoTokenizer
        from paddlenlp.utils.log import logger as paddlenlp_logger

        # PaddleNLP logs every file it reads; the pipeline reports what matters itself.
        paddlenlp_logger.set_level("WARNING")

        local = Path(name_or_path)
        if local.exists() and not local.is_dir():
            raise ModelError(f"{local}: expected a tokenizer folder (saved with save_pretrained)")
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        except Exception as exc:  # PaddleNLP raises many types for a missing/unreachable model
            raise ModelError(
                f"cannot load tokenizer {name_or_path!r} ({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}); "
                "set model.name_or_path to a local folder holding vocab.txt and tokenizer_config.json"
            ) from None

    @property
    def pad_id(self) -> int:
        return int(self._tokenizer.pad_token_id)

    def encode(self, texts: list[str], max_seq_length: int) -> Encoded:
        full = self._tokenizer(texts, add_special_tokens=True, return_token_type_ids=False)["input_ids"]
        truncated = 0
        ids: list[list[int]] = []
        for row in full:
            if len(row) > max_seq_length:
                truncated += 1
                # Keep [CLS] + the head of the text + [SEP], as the tokenizer's own truncation does.
                row = row[: max_seq_length - 1] + row[-1:]
            ids.append(row)
        return Encoded(input_ids=ids, n_truncated=truncated, pad_id=self.pad_id)


def load_tokenizer(name_or_path: str) -> PaddleNLPTokenizer:
    return PaddleNLPTokenizer(name_or_path)

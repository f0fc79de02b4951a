"""Text -> token ids. PaddleNLP's tokenizer is the reference; a Rust `tokenizers` WordPiece
over the same vocab and rules is the fast path, checked id-for-id against it."""

from __future__ import annotations

import importlib.util
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipeline.core.errors import ModelError, require_extra
from pipeline.core.files import names_a_path

# Tokenizer classes whose rules the fast path reproduces: BERT-style basic tokenization
# (clean text, split CJK characters, lower-case, strip accents, split punctuation) + WordPiece.
_WORDPIECE_CLASSES = {"ErnieTokenizer", "BertTokenizer"}


@dataclass(frozen=True)
class Encoded:
    """Token ids per sample (with [CLS]/[SEP]), truncated to max_seq_length; for pairs of texts
    also each token's segment (0: [CLS] a [SEP], 1: b [SEP]), None for single texts (all 0)."""

    input_ids: list[list[int]]
    n_truncated: int
    pad_id: int
    token_type_ids: list[list[int]] | None = None


class Tokenizer(Protocol):
    pad_id: int
    vocab_size: int  # ids it can give: 0 .. vocab_size - 1

    def encode(
        self, texts: list[str], max_seq_length: int, text_pairs: list[str] | None = None
    ) -> Encoded: ...


def pair_rows(
    firsts: list[list[int]], seconds: list[list[int]], cls: int, sep: int, max_seq_length: int, pad_id: int
) -> Encoded:
    """`[CLS] a [SEP] b [SEP]` (token types 0 then 1), the longer text cut first, token by token,
    until the pair fits: PaddleNLP's `longest_first` truncation."""
    ids: list[list[int]] = []
    types: list[list[int]] = []
    truncated = 0
    budget = max_seq_length - 3
    for a, b in zip(firsts, seconds, strict=True):
        excess = len(a) + len(b) - budget
        if excess > 0:
            truncated += 1
            a, b = _longest_first(a, b, excess)
        ids.append([cls, *a, sep, *b, sep])
        types.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
    return Encoded(input_ids=ids, n_truncated=truncated, pad_id=pad_id, token_type_ids=types)


def _longest_first(a: list[int], b: list[int], excess: int) -> tuple[list[int], list[int]]:
    """Removes `excess` tokens, each from the end of the longer text (of `b` where they are as long)."""
    keep_a, keep_b = len(a), len(b)
    for _ in range(excess):
        if keep_a > keep_b:
            keep_a -= 1
        else:
            keep_b -= 1
    return a[: max(keep_a, 0)], b[: max(keep_b, 0)]


def truncate(rows: list[list[int]], max_seq_length: int, pad_id: int) -> Encoded:
    """Keeps [CLS] + the head of the text + [SEP], as PaddleNLP's own truncation does."""
    truncated = 0
    ids: list[list[int]] = []
    for row in rows:
        if len(row) > max_seq_length:
            truncated += 1
            row = row[: max_seq_length - 1] + row[-1:]
        ids.append(row)
    return Encoded(input_ids=ids, n_truncated=truncated, pad_id=pad_id)


class PaddleNLPTokenizer:
    """The reference: whatever `AutoTokenizer.from_pretrained` gives for the model.

    With `use_fast`, PaddleNLP's C++ `fast_tokenizer` (package fast-tokenizer-python) instead.
    """

    def __init__(self, name_or_path: str, use_fast: bool = False) -> None:
        require_extra(
            "paddlenlp",
            f"the tokenizer {name_or_path!r} (not a local WordPiece folder: PaddleNLP's tokenizer)",
        )
        from paddlenlp.transformers import AutoTokenizer
        from paddlenlp.utils.log import logger as paddlenlp_logger

        local = Path(name_or_path)
        if local.exists() and not local.is_dir():
            raise ModelError(f"{local}: expected a tokenizer folder (saved with save_pretrained)")
        # PaddleNLP logs every file it reads; the pipeline reports what matters itself.
        paddlenlp_logger.set_level("WARNING")
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=use_fast)
        except Exception as exc:  # PaddleNLP raises many types for a missing/unreachable model
            raise ModelError(_load_failure(name_or_path, exc)) from None
        if use_fast and not type(self._tokenizer).__name__.endswith("FastTokenizer"):
            raise ModelError(
                f"PaddleNLP has no fast_tokenizer version of {type(self._tokenizer).__name__}; "
                "use infer.tokenizer=auto"
            )
        self.pad_id = int(self._tokenizer.pad_token_id)
        self.vocab_size = len(self._tokenizer)

    def encode(self, texts: list[str], max_seq_length: int, text_pairs: list[str] | None = None) -> Encoded:
        if text_pairs is not None:
            encoded = self._tokenizer(
                texts,
                text_pair=text_pairs,
                max_length=max_seq_length,
                truncation=True,
                return_token_type_ids=True,
            )
            rows, types = encoded["input_ids"], encoded["token_type_ids"]
            untruncated = self._tokenizer(texts, text_pair=text_pairs, return_token_type_ids=False)[
                "input_ids"
            ]
            cut = sum(1 for full in untruncated if len(full) > max_seq_length)
            return Encoded(input_ids=rows, n_truncated=cut, pad_id=self.pad_id, token_type_ids=types)
        rows = self._tokenizer(texts, add_special_tokens=True, return_token_type_ids=False)["input_ids"]
        return truncate(rows, max_seq_length, self.pad_id)


def _load_failure(name_or_path: str, exc: Exception) -> str:
    local = Path(name_or_path)
    try:
        tokenizer_class = str(_tokenizer_settings(local).get("tokenizer_class", "")) if local.is_dir() else ""
    except ModelError:
        tokenizer_class = ""
    sentencepiece = "ernie-m" in name_or_path.lower() or tokenizer_class.startswith("ErnieM")
    files = (
        "sentencepiece.bpe.model, vocab.txt and tokenizer_config.json "
        "(ERNIE-M's tokenizer is SentencePiece-based)"
        if sentencepiece
        else "vocab.txt and tokenizer_config.json"
    )
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "no detail"
    if local.is_dir():
        reason = f"{type(exc).__name__}: {detail}"
        return f"cannot load the tokenizer in {name_or_path} ({reason}): it needs {files}"
    if names_a_path(name_or_path):
        return f"{name_or_path}: tokenizer folder not found; set model.name_or_path to a folder with {files}"
    return (
        f"tokenizer {name_or_path!r} is not a local folder and PaddleNLP could not download it "
        f"(offline?). Where the network allows, run `AutoTokenizer.from_pretrained({name_or_path!r})"
        f".save_pretrained(DIR)` and set model.name_or_path=DIR (a folder with {files})"
    )


_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
# PaddleNLP's BasicTokenizer isolates symbols (Unicode category S*) and these code points too.
_EXTRA_SYMBOLS = (0x00AD, 0x00B2, 0x00BA, 0x3007, 0x00B5, 0x00D8, 0x014B, 0x01B1)


def _is_cjk(cp: int) -> bool:
    return any(low <= cp <= high for low, high in _CJK_RANGES)


class _BasicTranslation(dict):
    """A `str.translate` table for BasicTokenizer's text cleaning and CJK isolation.

    NUL, U+FFFD and every "C*" character (control, format, private use, unassigned) go,
    whitespace becomes a space, CJK characters get spaces around them: PaddleNLP's
    `_clean_text` + `_tokenize_chinese_chars`. Filled on first sight of each character,
    so a process pays only for the characters its texts use.
    """

    def __missing__(self, cp: int) -> str | None:
        char = chr(cp)
        category = unicodedata.category(char)
        if char in " \t\n\r" or category == "Zs":
            value: str | None = " "
        elif cp in (0, 0xFFFD) or category.startswith("C"):
            value = None
        elif _is_cjk(cp):
            value = f" {char} "
        else:
            value = char
        self[cp] = value
        return value


class FastWordPieceTokenizer:
    """ErnieTokenizer's rules, fast: C-level cleaning and CJK isolation (`str.translate`),
    whitespace split, then word -> ids from a cache whose misses are tokenized in one batch
    by a Rust `tokenizers` pipeline (lower-case, accents, punctuation and symbol split,
    WordPiece). Reviews repeat their characters, so almost every word is a cache hit."""

    _MAX_CACHE = 1_000_000

    def __init__(self, folder: Path) -> None:
        from tokenizers import Regex, normalizers, pre_tokenizers
        from tokenizers import Tokenizer as RustTokenizer
        from tokenizers.models import WordPiece

        settings = _tokenizer_settings(folder)
        vocab = _read_vocab(folder / "vocab.txt")
        special = {
            name: settings.get(name, default)
            for name, default in (
                ("unk_token", "[UNK]"),
                ("sep_token", "[SEP]"),
                ("pad_token", "[PAD]"),
                ("cls_token", "[CLS]"),
                ("mask_token", "[MASK]"),
            )
        }
        missing = [token for token in special.values() if token not in vocab]
        if missing:
            raise ModelError(f"{folder / 'vocab.txt'}: special tokens {missing} are not in the vocab")
        lowercase = bool(settings.get("do_lower_case", True))
        words = RustTokenizer(WordPiece(vocab, unk_token=special["unk_token"], max_input_chars_per_word=100))
        words.normalizer = normalizers.BertNormalizer(
            clean_text=False, handle_chinese_chars=False, strip_accents=None, lowercase=lowercase
        )
        symbols = "".join(f"\\x{{{cp:04X}}}" for cp in _EXTRA_SYMBOLS)
        words.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.BertPreTokenizer(),
                pre_tokenizers.Split(Regex(f"[\\p{{S}}{symbols}]"), "isolated"),
            ]
        )
        # PaddleNLP keeps special tokens written in the text whole; so does this.
        words.add_special_tokens(list(special.values()))
        self._words = words
        self._cache: dict[str, list[int]] = {}
        self._translation = _BasicTranslation()
        self._cls = vocab[special["cls_token"]]
        self._sep = vocab[special["sep_token"]]
        self.pad_id = vocab[special["pad_token"]]
        self.vocab_size = max(vocab.values()) + 1

    def _lookup(self, split_texts: list[list[str]]) -> None:
        cache = self._cache
        misses = list({word for words in split_texts for word in words if word not in cache})
        if not misses:
            return
        if len(cache) + len(misses) > self._MAX_CACHE:
            cache.clear()
        for word, encoding in zip(
            misses, self._words.encode_batch_fast(misses, add_special_tokens=False), strict=True
        ):
            cache[word] = encoding.ids

    def _word_ids(self, texts: list[str]) -> list[list[int]]:
        table = self._translation
        split_texts = [text.translate(table).split() for text in texts]
        self._lookup(split_texts)
        cache = self._cache
        return [[i for word in words for i in cache[word]] for words in split_texts]

    def encode(self, texts: list[str], max_seq_length: int, text_pairs: list[str] | None = None) -> Encoded:
        if text_pairs is not None:
            firsts, seconds = self._word_ids(texts), self._word_ids(text_pairs)
            return pair_rows(firsts, seconds, self._cls, self._sep, max_seq_length, self.pad_id)
        cls, sep = [self._cls], [self._sep]
        rows = [cls + ids + sep for ids in self._word_ids(texts)]
        return truncate(rows, max_seq_length, self.pad_id)


def _tokenizer_settings(folder: Path) -> dict:
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return {}
    try:
        return json.loads(config.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{config}: not valid JSON ({exc})") from None


def _read_vocab(path: Path) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for index, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        token = line.rstrip("\r")
        vocab.setdefault(token, index)
    return vocab


def fast_path_supported(name_or_path: str) -> bool:
    folder = Path(name_or_path)
    if not (folder / "vocab.txt").is_file():
        return False
    return _tokenizer_settings(folder).get("tokenizer_class", "ErnieTokenizer") in _WORDPIECE_CLASSES


def fast_tokenizer_installed() -> bool:
    """PaddleNLP's C++ fast tokenizer (fast-tokenizer-python: wheels for Python < 3.11 only)."""
    return importlib.util.find_spec("fast_tokenizer") is not None


def load_tokenizer(name_or_path: str, kind: str = "auto") -> Tokenizer:
    """kind: paddlenlp (the reference), fast (Rust WordPiece, id-identical), fast_tokenizer
    (PaddleNLP's C++ library), auto: the first of fast, fast_tokenizer, paddlenlp that applies.

    auto prefers the Rust path over fast_tokenizer where both apply: measured on the demo
    corpus it is id-identical to the reference and faster, while fast_tokenizer 1.0.2 differs
    from the reference on 68 of 17,368 reviews (runs of symbols such as "～～").
    """
    if kind == "fast" or (kind == "auto" and fast_path_supported(name_or_path)):
        if not fast_path_supported(name_or_path):
            raise ModelError(
                f"infer.tokenizer=fast needs a local WordPiece tokenizer folder (vocab.txt, "
                f"tokenizer_class in {sorted(_WORDPIECE_CLASSES)}); {name_or_path!r} is not one. "
                "Use infer.tokenizer=auto"
            )
        return FastWordPieceTokenizer(Path(name_or_path))
    if kind == "fast_tokenizer" or (kind == "auto" and fast_tokenizer_installed()):
        # fast-tokenizer-python has wheels for Python < 3.11 only.
        require_extra("fast-tokenizer", "infer.tokenizer=fast_tokenizer")
        try:
            return PaddleNLPTokenizer(name_or_path, use_fast=True)
        except ModelError:
            if kind == "fast_tokenizer":
                raise
    return PaddleNLPTokenizer(name_or_path)

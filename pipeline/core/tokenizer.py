"""Text -> token ids. PaddleNLP's tokenizer is the reference; a Rust `tokenizers` WordPiece
over the same vocab and rules is the fast path, checked id-for-id against it."""

from __future__ import annotations

import importlib.util
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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


def kept_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """How many tokens of a and of b PaddleNLP's `longest_first` truncation keeps where the pair
    has room for `budget` text tokens: it removes one token at a time from the longer text, from b
    where they are as long (`PretrainedTokenizerBase.truncate_sequences`, PaddleNLP 2.8.1), down to
    nothing. Computed in closed form, without the token-by-token loop."""
    excess = len_a + len_b - budget
    if excess <= 0:
        return len_a, len_b
    # The longer text first, down to the shorter one's length ...
    first = min(excess, abs(len_a - len_b))
    if len_a > len_b:
        len_a -= first
    else:
        len_b -= first
    # ... then the two in turn, b first: b loses the odd token.
    rest = excess - first
    return max(len_a - rest // 2, 0), max(len_b - (rest + 1) // 2, 0)


def cut(ids: list[int], keep: int, side: str = "right") -> list[int]:
    """The first `keep` ids (truncation_side right, the default) or the last ones (left)."""
    if keep >= len(ids):
        return ids
    return ids[:keep] if side == "right" else ids[len(ids) - keep :]


# The fewest tokens a row can have: its special tokens, [CLS] [SEP] for a text, [CLS] [SEP] [SEP]
# for a pair (both texts cut to nothing). Below that PaddleNLP returns rows longer than max_length
# (a pair: always [CLS] [SEP] [SEP]); we refuse instead. At exactly 2 PaddleNLP leaves a non-empty
# single text whole (`truncate_sequences` cannot remove more tokens than the text has: it logs an
# error); we give [CLS] [SEP], as before. A pair keeps a token of each non-empty text only from
# max_seq_length 5 on: at 4, b (which loses ties) is cut to nothing; at 3 both are.
SINGLE_SPECIAL_TOKENS = 2
PAIR_SPECIAL_TOKENS = 3
PAIR_MIN_SEQ_LENGTH_KEEPING_BOTH = 5


def check_room(max_seq_length: int, specials: int, pair: bool) -> None:
    if max_seq_length < specials:
        what = "a pair of texts" if pair else "a text"
        raise ValueError(
            f"max_seq_length={max_seq_length} is too short for {what}: "
            f"its special tokens alone take {specials}"
        )


def pair_rows(
    firsts: list[list[int]],
    seconds: list[list[int]],
    cls: int,
    sep: int,
    max_seq_length: int,
    pad_id: int,
    side: str = "right",
) -> Encoded:
    """`[CLS] a [SEP] b [SEP]` (token types 0 then 1), cut longest-first to max_seq_length
    (`kept_lengths`): PaddleNLP's ErnieTokenizer with `truncation=True`. `n_truncated` counts the
    pairs that lost a token."""
    check_room(max_seq_length, PAIR_SPECIAL_TOKENS, pair=True)
    ids: list[list[int]] = []
    types: list[list[int]] = []
    truncated = 0
    budget = max_seq_length - PAIR_SPECIAL_TOKENS
    for a, b in zip(firsts, seconds, strict=True):
        keep_a, keep_b = kept_lengths(len(a), len(b), budget)
        if keep_a + keep_b < len(a) + len(b):
            truncated += 1
            a, b = cut(a, keep_a, side), cut(b, keep_b, side)
        ids.append([cls, *a, sep, *b, sep])
        types.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
    return Encoded(input_ids=ids, n_truncated=truncated, pad_id=pad_id, token_type_ids=types)


def truncate(rows: list[list[int]], max_seq_length: int, pad_id: int, side: str = "right") -> Encoded:
    """Rows `[CLS] text [SEP]`: keeps [CLS] + the head (side right) or tail (left) of the text + [SEP],
    as PaddleNLP's own truncation does."""
    check_room(max_seq_length, SINGLE_SPECIAL_TOKENS, pair=False)
    truncated = 0
    ids: list[list[int]] = []
    for row in rows:
        if len(row) > max_seq_length:
            truncated += 1
            row = [row[0], *cut(row[1:-1], max_seq_length - SINGLE_SPECIAL_TOKENS, side), row[-1]]
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
        # Special tokens and token types as the model class lays them out (ERNIE: [CLS] a [SEP] b [SEP];
        # ERNIE-M: [CLS] a [SEP] [SEP] b [SEP]). PaddleNLP's fast tokenizer classes inherit the base
        # class's functions, which add none: theirs are their Python class's (`slow_tokenizer_class`),
        # which read only the special token ids the two share.
        layout = type(self._tokenizer).slow_tokenizer_class if use_fast else type(self._tokenizer)
        self._with_specials: Callable[[list[int], list[int] | None], list[int]] = partial(
            layout.build_inputs_with_special_tokens, self._tokenizer
        )
        self._token_types: Callable[[list[int], list[int] | None], list[int]] = partial(
            layout.create_token_type_ids_from_sequences, self._tokenizer
        )
        self._specials = {pair: len(self._with_specials([], [] if pair else None)) for pair in (False, True)}
        self._side = str(self._tokenizer.truncation_side)

    def _ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's ids, no special tokens, not truncated: PaddleNLP's own tokenization, once."""
        if not texts:
            return []
        encoded = self._tokenizer(
            texts, add_special_tokens=False, return_token_type_ids=False, return_attention_mask=False
        )
        ids: list[list[int]] = encoded["input_ids"]
        return ids

    def encode(self, texts: list[str], max_seq_length: int, text_pairs: list[str] | None = None) -> Encoded:
        """PaddleNLP's `tokenizer(texts, text_pair=..., max_length=..., truncation=True)`, in one pass.

        Tokenizes each text once without truncation, then cuts as PaddleNLP's `prepare_for_model`
        does (`kept_lengths`, checked against it in tests/integration/test_tokenizer.py): that gives
        the rows and which were cut without tokenizing twice. (PaddleNLP cannot say itself: it refuses
        `return_overflowing_tokens` for pairs cut `longest_first`, and `return_length` is the length
        after the cut.)
        """
        pair = text_pairs is not None
        specials = self._specials[pair]
        check_room(max_seq_length, specials, pair)
        budget = max_seq_length - specials
        firsts = self._ids(texts)
        seconds: list[list[int] | None] = (
            [None] * len(firsts) if text_pairs is None else [*self._ids(text_pairs)]
        )
        rows: list[list[int]] = []
        types: list[list[int]] = []
        truncated = 0
        for a, b in zip(firsts, seconds, strict=True):
            len_b = 0 if b is None else len(b)
            keep_a, keep_b = kept_lengths(len(a), len_b, budget)
            if keep_a + keep_b < len(a) + len_b:
                truncated += 1
                a = cut(a, keep_a, self._side)
                b = None if b is None else cut(b, keep_b, self._side)
            rows.append(self._with_specials(a, b))
            if pair:
                types.append(self._token_types(a, b))
        return Encoded(rows, truncated, self.pad_id, types if pair else None)


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
        # PaddleNLP reads truncation_side from tokenizer_config.json too (right: keep the head).
        self._side = str(settings.get("truncation_side", "right"))

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
            return pair_rows(firsts, seconds, self._cls, self._sep, max_seq_length, self.pad_id, self._side)
        cls, sep = [self._cls], [self._sep]
        rows = [cls + ids + sep for ids in self._word_ids(texts)]
        return truncate(rows, max_seq_length, self.pad_id, self._side)


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

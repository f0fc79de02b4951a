"""The fast tokenizer gives PaddleNLP's ids on every line of the demo corpus, and PaddleNLP's ids
and token types for pairs of texts (`[CLS] a [SEP] b [SEP]`, cut longest-first)."""

from __future__ import annotations

import json
import shutil
import unicodedata
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.data import read_labels, read_split, read_texts
from pipeline.core.errors import MissingExtra, ModelError
from pipeline.core.tokenizer import (
    Encoded,
    FastWordPieceTokenizer,
    PaddleNLPTokenizer,
    fast_tokenizer_installed,
    load_tokenizer,
    pair_rows,
    truncate,
)

EDGE_CASES = [
    "Hello WORLD café naïve [UNK] x[SEP]y",
    "１２３ＡＢＣ full-width",
    "e\u0301 combining accent, zero\u200bwidth",
    "😀 emoji ﹏ ~ ～～ 1～2 ￥50.00 ² º 〇 µ Ø",
    "nul\x00char and private\ue139use and tab\tinside",
    "İstanbul ǅ ß ﬁ",
    "a" * 150 + " overlong word",
]

# Texts that tokenize to nothing, to special tokens, or to one word of many pieces.
PAIR_EDGE_CASES = [
    *EDGE_CASES,
    "",
    " ",
    "\t\n\u3000\u00a0 ",
    "\x00\x01\x7f\u200b\ufeff",
    "[SEP]",
    "[CLS] a [SEP] b [SEP]",
    "[sep] [Sep] [PAD][MASK][UNK]",
    "ab" * 49,  # one word, 98 characters: many WordPiece pieces
    "a" * 100,  # the longest word WordPiece splits (max_input_chars_per_word 100)
    "a" * 101,  # one [UNK]
    "好" * 600,
    "好",
]

# Several max_seq_length values: 3 cuts both texts to nothing, 4 keeps only a token of a, 5 one of each.
PAIR_LENGTHS = (3, 4, 5, 8, 16, 32, 128, 512)


def corpus(data_dir: Path) -> list[str]:
    labels = read_labels(data_dir)
    texts = [t for split in ("train", "dev", "test") for t in read_split(data_dir, split, labels).texts]
    return texts + read_texts(data_dir).texts + EDGE_CASES


@pytest.fixture(scope="module")
def folder(tiny_model: Path) -> str:
    return str(tiny_model / "tokenizer")


@pytest.fixture(scope="module")
def paddlenlp(folder: str) -> Any:
    """PaddleNLP's own tokenizer object (the reference), not our wrapper around it."""
    tokenizer = PaddleNLPTokenizer(folder)
    return tokenizer._tokenizer


def reference_ids(paddlenlp: Any, text: str) -> list[int]:
    """A text's ids, no special tokens, as PaddleNLP's `_encode_plus` computes them."""
    ids: list[int] = paddlenlp.convert_tokens_to_ids(paddlenlp.tokenize(text))
    return ids


def reference(
    paddlenlp: Any, a: list[int], b: list[int] | None, max_seq_length: int
) -> tuple[list[int], list[int]]:
    """PaddleNLP's `prepare_for_model` with `truncation=True` (longest_first): what its `__call__`
    does with each text's ids."""
    encoded = paddlenlp.prepare_for_model(
        a, b, truncation=True, max_length=max_seq_length, return_token_type_ids=True, verbose=False
    )
    return encoded["input_ids"], encoded["token_type_ids"]


def test_fast_ids_equal_reference_on_every_line(folder: str, demo_data_dir: Path) -> None:
    texts = corpus(demo_data_dir)
    reference = load_tokenizer(folder, "paddlenlp").encode(texts, 512)
    fast = load_tokenizer(folder, "fast").encode(texts, 512)
    mismatched = [t for t, a, b in zip(texts, reference.input_ids, fast.input_ids, strict=True) if a != b]
    assert mismatched == []
    assert fast.n_truncated == reference.n_truncated > 0
    assert fast.pad_id == reference.pad_id
    assert fast.token_type_ids is None and reference.token_type_ids is None


@pytest.mark.parametrize("side", ["right", "left"])
def test_truncation_is_paddlenlps_for_every_length(paddlenlp: Any, side: str) -> None:
    """pair_rows and truncate against PaddleNLP's `prepare_for_model` for every pair of lengths
    0..11 and every max_seq_length from the special tokens' 3 (2 for one text) to past the pair's
    length: which text loses a token (the longer; b where as long), token types, what is counted."""
    cls, sep, pad = paddlenlp.cls_token_id, paddlenlp.sep_token_id, paddlenlp.pad_token_id
    paddlenlp.truncation_side = side
    try:
        wrong = []
        for len_a in range(12):
            for len_b in range(12):
                a, b = list(range(10, 10 + len_a)), list(range(100, 100 + len_b))
                for max_seq_length in range(3, len_a + len_b + 5):
                    got = pair_rows([a], [b], cls, sep, max_seq_length, pad, side)
                    ids, types = reference(paddlenlp, a, b, max_seq_length)
                    cut = len(ids) < len_a + len_b + 3
                    if (got.input_ids, got.token_type_ids, got.n_truncated) != ([ids], [types], int(cut)):
                        wrong.append((len_a, len_b, max_seq_length))
                # One text; at max_seq_length 2 PaddleNLP cannot cut a text (it logs an error and
                # leaves it whole): truncate gives [CLS] [SEP], as it always did.
                single = truncate([[cls, *a, sep]], 2, pad, side)
                assert single.input_ids == [[cls, sep]] and single.n_truncated == int(len_a > 0)
                for max_seq_length in range(3, len_a + 4):
                    got = truncate([[cls, *a, sep]], max_seq_length, pad, side)
                    ids, _ = reference(paddlenlp, a, None, max_seq_length)
                    if (got.input_ids, got.n_truncated) != ([ids], int(len(ids) < len_a + 2)):
                        wrong.append((len_a, None, max_seq_length))
    finally:
        paddlenlp.truncation_side = "right"
    assert wrong == []


def test_pair_ties_and_the_shortest_lengths(folder: str) -> None:
    """The worked cases behind the rule, on both paths."""
    for kind in ("fast", "paddlenlp"):
        tokenizer = load_tokenizer(folder, kind)
        # Two texts of 4 tokens each, 3 to remove at max_seq_length 8: b, a, b.
        pair = tokenizer.encode(["好好好好"], 8, ["好好好好"])
        assert [len(x) for x in _texts_of(pair)[0]] == [3, 2]
        assert pair.token_type_ids == [[0, 0, 0, 0, 0, 1, 1, 1]]
        # 3: nothing left of either text; 4: a token of a only (b loses the tie); 5: one of each.
        for max_seq_length, lengths in ((3, [0, 0]), (4, [1, 0]), (5, [1, 1])):
            pair = tokenizer.encode(["好好", "好"], max_seq_length, ["好好", ""])
            assert [len(x) for x in _texts_of(pair)[0]] == lengths
            assert pair.n_truncated == 1 + (max_seq_length == 3)
        for too_short in (1, 2):
            with pytest.raises(ValueError, match=f"max_seq_length={too_short} is too short for a pair"):
                tokenizer.encode(["好"], too_short, ["好"])
        with pytest.raises(ValueError, match="max_seq_length=1 is too short for a text"):
            tokenizer.encode(["好"], 1)


def _texts_of(encoded: Encoded) -> list[tuple[list[int], list[int]]]:
    """Each pair row's a and b, told apart by its token types."""
    assert encoded.token_type_ids is not None
    return [
        ([i for i, t in zip(row[1:], types[1:], strict=True) if t == 0][:-1], row[types.index(1) : -1])
        for row, types in zip(encoded.input_ids, encoded.token_type_ids, strict=True)
    ]


# Each edge case meets itself and these, both ways round: nothing, only invisible characters, a special
# token, one token, a long text.
EDGE_PARTNERS = ["", "\x00\x01\x7f\u200b\ufeff", "[SEP]", "好", "好" * 600]


def edge_pairs() -> list[tuple[str, str]]:
    both_ways = ((x, y) for e in PAIR_EDGE_CASES for p in (*EDGE_PARTNERS, e) for x, y in ((e, p), (p, e)))
    return list(dict.fromkeys(both_ways))


@pytest.fixture(scope="module")
def pairs(folder: str, demo_data_dir: Path) -> list[tuple[str, str]]:
    """Pairs from the demo corpus: neighbours in a sample of it, long texts (from the 60 longest: 450
    to 2,900 tokens) with each other and with short ones (a much longer than b, and the reverse),
    texts of equal length; then the edge cases (last)."""
    texts = corpus(demo_data_dir)[: -len(EDGE_CASES)]
    sample = texts[::50]
    by_length = sorted(texts, key=len)
    longest, short = by_length[-60::6], [t for t in by_length if t.strip()][:10]
    same_length: dict[int, list[str]] = defaultdict(list)
    fast = FastWordPieceTokenizer(Path(folder))
    for text, ids in zip(sample, fast._word_ids(sample), strict=True):
        same_length[len(ids)].append(text)
    equal = [(group[i], group[i + 1]) for group in same_length.values() for i in range(0, len(group) - 1, 2)]
    return [
        *pairwise(sample),
        *pairwise(longest),
        *zip(longest, short, strict=True),
        *zip(short, longest, strict=True),
        *equal[:100],
        *edge_pairs(),
    ]


def test_fast_pairs_equal_paddlenlp(folder: str, paddlenlp: Any, pairs: list[tuple[str, str]]) -> None:
    """Ids, token types and the count of pairs cut, at several max_seq_length values: the fast path
    (and, at 16, our PaddleNLP path on the corpus pairs) against PaddleNLP's own truncation of
    PaddleNLP's own ids. (PaddleNLP's longest_first cut copies the text once per token removed: the
    longest texts at small lengths are what this test spends its time on.)"""
    ids = {text: reference_ids(paddlenlp, text) for pair in pairs for text in pair}
    fast = load_tokenizer(folder, "fast")
    ours = load_tokenizer(folder, "paddlenlp")
    assert isinstance(fast, FastWordPieceTokenizer) and isinstance(ours, PaddleNLPTokenizer)
    assert sum(len(ids[a]) + len(ids[b]) + 3 > 512 for a, b in pairs) >= 25
    assert sum(len(ids[a]) == len(ids[b]) > 0 for a, b in pairs) >= 50
    n_corpus = len(pairs) - len(edge_pairs())
    for max_seq_length in PAIR_LENGTHS:
        expected = [reference(paddlenlp, ids[a], ids[b], max_seq_length) for a, b in pairs]
        assert_pairs_equal(fast, pairs, expected, ids, max_seq_length)
        if max_seq_length == 16:
            assert_pairs_equal(ours, pairs[:n_corpus], expected[:n_corpus], ids, max_seq_length)
        # The first texts alone: single texts as before, at each length.
        firsts = [a for a, _ in pairs]
        singles = fast.encode(firsts, max_seq_length)
        assert singles.input_ids == [reference(paddlenlp, ids[a], None, max_seq_length)[0] for a in firsts]
        assert singles.n_truncated == sum(len(ids[a]) + 2 > max_seq_length for a in firsts)
        assert singles.token_type_ids is None


def assert_pairs_equal(
    tokenizer: Any,
    pairs: list[tuple[str, str]],
    expected: list[tuple[list[int], list[int]]],
    ids: dict[str, list[int]],
    max_seq_length: int,
) -> None:
    got = tokenizer.encode([a for a, _ in pairs], max_seq_length, [b for _, b in pairs])
    assert got.token_type_ids is not None
    mismatched = [
        pair
        for pair, row, types, want in zip(pairs, got.input_ids, got.token_type_ids, expected, strict=True)
        if (row, types) != want
    ]
    assert mismatched == [], (type(tokenizer).__name__, max_seq_length, mismatched[:3])
    cut = sum(
        len(row) < len(ids[a]) + len(ids[b]) + 3 for (a, b), (row, _) in zip(pairs, expected, strict=True)
    )
    assert got.n_truncated == cut > 0, (type(tokenizer).__name__, max_seq_length)
    assert max(map(len, got.input_ids)) <= max_seq_length


def test_pairs_equal_paddlenlps_call(folder: str, paddlenlp: Any, pairs: list[tuple[str, str]]) -> None:
    """End to end, for the edge cases and some corpus pairs: PaddleNLP's
    `tokenizer(a, text_pair=b, max_length=..., truncation=True)` as it is called, against both paths."""
    subset = pairs[:20] + edge_pairs()
    firsts, seconds = [a for a, _ in subset], [b for _, b in subset]
    fast, ours = load_tokenizer(folder, "fast"), load_tokenizer(folder, "paddlenlp")
    for max_seq_length in (3, 4, 5, 16, 512):
        expected = paddlenlp(
            firsts, text_pair=seconds, max_length=max_seq_length, truncation=True, return_token_type_ids=True
        )
        for tokenizer in [fast, ours] if max_seq_length in (4, 16) else [fast]:
            got = tokenizer.encode(firsts, max_seq_length, seconds)
            assert got.input_ids == expected["input_ids"], (type(tokenizer).__name__, max_seq_length)
            assert got.token_type_ids == expected["token_type_ids"], (
                type(tokenizer).__name__,
                max_seq_length,
            )


def test_truncation_side_left_from_the_tokenizer_config(folder: str, tmp_path: Path) -> None:
    """A tokenizer_config.json with truncation_side "left" (keep the end of each text): PaddleNLP
    reads it, and so do both our paths."""
    left = tmp_path / "left"
    shutil.copytree(folder, left)
    config = left / "tokenizer_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "truncation_side": "left"}))
    paddlenlp = PaddleNLPTokenizer(str(left))._tokenizer
    assert paddlenlp.truncation_side == "left"
    firsts = ["一二三四五六七八九十", "一二", *PAIR_EDGE_CASES]
    seconds = ["甲乙丙丁", "一二三四五六七八九十", *reversed(PAIR_EDGE_CASES)]
    for max_seq_length in (5, 8, 16):
        expected = paddlenlp(
            firsts, text_pair=seconds, max_length=max_seq_length, truncation=True, return_token_type_ids=True
        )
        singles = paddlenlp(firsts, max_length=max_seq_length, truncation=True)["input_ids"]
        for kind in ("fast", "paddlenlp"):
            tokenizer = load_tokenizer(str(left), kind)
            got = tokenizer.encode(firsts, max_seq_length, seconds)
            assert (got.input_ids, got.token_type_ids) == (expected["input_ids"], expected["token_type_ids"])
            assert tokenizer.encode(firsts, max_seq_length).input_ids == singles


def test_auto_picks_fast_for_a_wordpiece_folder(tiny_model: Path, tmp_path: Path) -> None:
    assert isinstance(load_tokenizer(str(tiny_model / "tokenizer")), FastWordPieceTokenizer)
    assert isinstance(load_tokenizer(str(tiny_model / "tokenizer"), "paddlenlp"), PaddleNLPTokenizer)
    with pytest.raises(ModelError, match=r"infer\.tokenizer=fast needs a local WordPiece tokenizer folder"):
        load_tokenizer(str(tmp_path), "fast")


def test_fast_tokenizer_kind_says_how_to_install_it(tiny_model: Path) -> None:
    if fast_tokenizer_installed():
        pytest.skip("fast_tokenizer is installed here")
    with pytest.raises(
        MissingExtra, match=r"needs the fast-tokenizer extra: pip install -e '\.\[cpu,fast-tokenizer\]'"
    ):
        load_tokenizer(str(tiny_model / "tokenizer"), "fast_tokenizer")


def test_paddlenlp_fast_tokenizer_where_installed(
    tiny_model: Path, demo_data_dir: Path, pairs: list[tuple[str, str]]
) -> None:
    """fast-tokenizer-python has wheels for Python < 3.11 only; this runs where it is installed."""
    pytest.importorskip("fast_tokenizer")
    folder = str(tiny_model / "tokenizer")
    tokenizer = load_tokenizer(folder, "fast_tokenizer")
    assert isinstance(tokenizer, PaddleNLPTokenizer)
    assert type(tokenizer._tokenizer).__name__ == "ErnieFastTokenizer"
    texts = corpus(demo_data_dir)[: -len(EDGE_CASES)]
    reference = load_tokenizer(folder, "paddlenlp").encode(texts, 512).input_ids
    got = tokenizer.encode(texts, 512).input_ids
    mismatched = [t for t, a, b in zip(texts, reference, got, strict=True) if a != b]
    # Known: fast_tokenizer 1.0.2 keeps runs of symbols (e.g. "～～") whole where PaddleNLP's
    # Python tokenizer isolates each one; this is why auto prefers the Rust path.
    assert len(mismatched) <= 0.01 * len(texts)
    assert all(any(unicodedata.category(c).startswith("S") for c in t) for t in mismatched)
    # Pairs go through the same cut as the Python tokenizer's (its C++ truncation is not used):
    # where both tokenize a pair's texts alike, the rows and token types are the same.
    fast = load_tokenizer(folder, "fast")
    firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
    for max_seq_length in (8, 128):
        want, have = (
            fast.encode(firsts, max_seq_length, seconds),
            tokenizer.encode(firsts, max_seq_length, seconds),
        )
        assert want.token_type_ids is not None and have.token_type_ids is not None
        differ = [
            pair
            for pair, *rows in zip(
                pairs, want.input_ids, have.input_ids, want.token_type_ids, have.token_type_ids, strict=True
            )
            if rows[0] != rows[1] or rows[2] != rows[3]
        ]
        assert all(any(unicodedata.category(c).startswith("S") for c in "".join(p)) for p in differ)
    # auto still takes the id-identical Rust path for a WordPiece folder.
    assert isinstance(load_tokenizer(folder), FastWordPieceTokenizer)

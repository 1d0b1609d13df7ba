"""Named comparison entries: a scenario's `compare:` list runs the same scheme under different
settings side by side, `--schemes` picks labels from it, and a bad entry is refused (exit 2, the
entry's path) before anything runs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

import cosim
from cosim.cli import EXIT_BAD_INPUT, main
from conftest import tiny_scenario


def _file(tmp_path: Path, compare=None) -> Path:
    raw = tiny_scenario(tmp_path)
    if compare is not None:
        raw["compare"] = compare
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _labels_run(out: str) -> list[str]:
    """The labels of the comparison.csv named by `cosim compare`'s last line."""
    folder = out.strip().splitlines()[-1].removeprefix("results: ")
    return list(pd.read_csv(Path(folder) / "comparison.csv").label)


def test_one_scheme_twice_with_different_settings_gives_two_rows_that_differ(tiny):
    tiny["scheme"] = {**tiny["scheme"], "cut_layer": 2}  # the base block: reaches the plain entry
    tiny["compare"] = [{"label": "cut1", "scheme": {"name": "splitlora", "cut_layer": 1}},  # the entry wins
                       "splitlora"]
    table = cosim.compare(tiny)
    assert list(table.index) == ["cut1", "splitlora"]
    assert (table.scheme == "splitlora").all() and (table.rounds == 2).all()  # base rounds reach both
    # fewer blocks on the device: less device work and memory, the same model learned
    assert table.loc["cut1", "device_flops"] < table.loc["splitlora", "device_flops"]
    assert table.loc["cut1", "device_peak_memory_bytes"] < table.loc["splitlora", "device_peak_memory_bytes"]
    assert table.loc["cut1", "final_accuracy"] == table.loc["splitlora", "final_accuracy"]
    cuts = [yaml.safe_load((Path(d) / "scenario.yaml").read_text()) for d in table.run_dir]
    assert [c["scheme"]["cut_layer"] for c in cuts] == [1, 2]
    assert all(not c["compare"] for c in cuts)  # each run folder holds a one-scheme scenario
    out = table.attrs["dir"]
    csv = pd.read_csv(out / "comparison.csv")
    assert list(csv.label) == ["cut1", "splitlora"] and list(csv.scheme) == ["splitlora", "splitlora"]
    assert (out / "comparison.png").is_file()


def test_the_files_list_runs_without_schemes_and_schemes_picks_labels_or_plain_names(tmp_path, capsys):
    path = _file(tmp_path, ["fedlora", {"label": "split-1", "scheme": {"name": "splitlora", "cut_layer": 1}}])
    assert main(["compare", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert _labels_run(out) == ["fedlora", "split-1"]
    assert "split-1" in out  # the printed table is indexed by label

    assert main(["compare", str(path), "--quiet", "--schemes", "split-1,fedavg"]) == 0  # fedavg: not a label
    assert _labels_run(capsys.readouterr().out) == ["split-1", "fedavg"]


@pytest.mark.parametrize("compare, expected", [
    ([{"label": "m3", "scheme": {"name": "mobillm", "bits": 3}}], ["compare.0.scheme.bits", "given 3", "2, 4 or 8"]),
    (["fedlora", {"label": "x", "scheme": {"name": "nope"}}], ["compare.1.scheme.name", "'nope'", "splitlora"]),
    (["fedlora", "nope"], ["compare.1:", "'nope'", "splitlora"]),
    (["fedlora", {"label": "fedlora", "scheme": {"name": "splitlora"}}], ["compare.1.label", "'fedlora'"]),
    ([{"label": "a b", "scheme": {"name": "fedlora"}}], ["compare.0.label", "'a b'"]),
    ([{"label": "typo", "scheme": {"name": "fedlora", "cut_layr": 2}}], ["compare.0.scheme.cut_layr", "lora"]),
    ([{"label": "deep", "scheme": {"name": "splitlora", "cut_layer": 9}}],
     ["compare.0.scheme.cut_layer", "given 9", "1 to 4"]),
    (None, ["compare:", "none given", "splitlora"]),
])
def test_a_bad_entry_exits_2_naming_its_path_before_anything_runs(tmp_path, capsys, compare, expected):
    path = _file(tmp_path, compare)
    assert main(["compare", str(path), "--quiet"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    for text in expected:
        assert text in err
    assert "Traceback" not in err
    assert not (tmp_path / "results").exists()  # refused before the first run


def test_schemes_naming_neither_a_label_nor_a_scheme_is_refused(tmp_path, capsys):
    path = _file(tmp_path, ["fedlora", {"label": "split-1", "scheme": {"name": "splitlora", "cut_layer": 1}}])
    assert main(["compare", str(path), "--schemes", "split-2"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "'split-2'" in err and "split-1" in err  # what was given and the labels allowed


def test_validate_and_load_accept_a_file_with_compare(tmp_path, capsys):
    path = _file(tmp_path, ["fedlora", {"label": "split-1", "scheme": {"name": "splitlora", "cut_layer": 1}}])
    assert main(["validate", str(path)]) == 0
    assert "ok:" in capsys.readouterr().out
    sc = cosim.load(path)
    assert [(e.label, e.scheme["name"]) for e in sc.compare] == [("fedlora", "fedlora"), ("split-1", "splitlora")]
    assert sc.scheme.name == "fedavg"  # `cosim run` runs the base scheme


def test_validate_checks_every_compare_entry(tmp_path, capsys):
    raw = tiny_scenario(tmp_path)
    raw["scheme"] = {"name": "splitlora", "cut_layer": 1, "rounds": 1, "local_steps": 1, "batch_size": 8}
    raw["compare"] = ["splitlora", {"label": "deep", "scheme": {"name": "splitlora", "cut_layer": 9}}]
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "compare.1.scheme.cut_layer" in err and "9" in err and "Traceback" not in err
    raw["compare"][1]["scheme"]["cut_layer"] = 2
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == 0
    assert "compare: splitlora, deep" in capsys.readouterr().out


def test_picking_one_entry_keeps_the_base_keys_other_entries_declare(tiny):
    """compare_side-style: the base block holds ringada's knobs; running only a side-tuner is no typo."""
    tiny["scheme"] = {**tiny["scheme"], "name": "splitlora", "cut_layer": 1}
    tiny["compare"] = ["fedlora", "splitlora"]
    table = cosim.compare(tiny, ["fedlora"])
    assert list(table.index) == ["fedlora"]
    tiny["scheme"]["cut_layr"] = 2
    with pytest.raises(cosim.ScenarioError, match="scheme.cut_layr: no compared scheme declares it"):
        cosim.compare(tiny, ["fedlora"])

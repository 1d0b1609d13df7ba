"""A scenario file is user input: whatever is done to a shipped scenario — keys dropped or added,
wrong types, NaN/inf/negative/huge numbers, empty lists, wrong enum strings, non-UTF-8 bytes, YAML
alias bombs, duplicate keys — `cosim.load` answers with a Scenario or a ScenarioError, never a raw
Python error; its message stays short and names the user's path; `cosim validate` exits 0 or 2,
never with a traceback.

Fast tier: a few hundred examples; the slow tier runs more than 10,000 (`make test`). Both are
derandomized, so a failure reproduces; `make fuzz` (COSIM_FUZZ_EXPLORE=1) draws new examples.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cosim
from cosim.cli import EXIT_BAD_INPUT, main
from cosim.config import MAX_PROBLEM_CHARS, MAX_PROBLEMS
from cosim.scenario import ScenarioError
from conftest import ROOT

SCENARIO_FILES = sorted((ROOT / "scenarios").glob("*.yaml"))
SCENARIOS = {p.stem: yaml.safe_load(p.read_text()) for p in SCENARIO_FILES}
TEXTS = {p.stem: p.read_text() for p in SCENARIO_FILES}
#: Scenarios on tiny models: `cosim validate` builds them in about a second.
TINY = sorted(n for n, raw in SCENARIOS.items() if str(raw.get("model", {}).get("source", "")).startswith("tiny-"))

#: The longest a ScenarioError's text may be (cosim.config bounds each line and the line count).
MAX_MESSAGE_CHARS = (MAX_PROBLEMS + 1) * (MAX_PROBLEM_CHARS + 1)
#: Parts of a path that are pydantic's union tags, not the user's keys.
TAG_LIKE = re.compile(r"^(function-|literal\[|tagged-union|list\[|dict\[|union\[|int$|float$|str$|bool$|none$)")
#: Discriminator values that pydantic would put in a path (mobility and conditions kinds).
KINDS = {"static", "road", "area", "random_waypoint", "gauss_markov", "trace", "sumo", "uav", "markov"}


def _fast(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))


def _slow(n: int):
    """Derandomized too, so `make test` is the same examples every run (a red CI reproduces here);
    `COSIM_FUZZ_EXPLORE=1` draws new ones each run, and a failure prints the blob that replays it."""
    return settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                    derandomize=not os.environ.get("COSIM_FUZZ_EXPLORE"), print_blob=True)


# --- what is done to a scenario -----------------------------------------------------------------

def _nested(depth: int):
    value = "fedavg"
    for i in range(depth):
        value = [value] if i % 2 else {"name": value}
    return value


BAD_VALUES = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-10**30, max_value=10**30),
    st.sampled_from([0, -1, 1, 10**6, 10**9, 10**12, 2**63, -2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -1e-300, 1e308, -0.0]),
    st.text(max_size=24),
    st.sampled_from(["", ".", "..", "../..", "/", "/etc/passwd", "a" * 5000, "x" * 300 + "/config.json", "\x00",
                     "fedavg", "3gpp-uma", "static", "road", "auto", "cuda:99", "Infinity", "1e999", "yes"]),
    st.lists(st.integers(-3, 3), max_size=4), st.lists(st.floats(), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(-2, 2), max_size=3),
    st.just([]), st.just({}), st.just([[]]), st.just({"name": ["fedavg"]}),
    st.integers(1, 120).map(_nested),
)


def _paths(node, prefix=()):
    """Every path into a plain structure (dict keys, list indexes), parents before children."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _at(node, path):
    for part in path:
        node = node[part]
    return node


def mutate(data, raw: dict) -> dict:
    """One to three mutations of `raw`: drop, add an unknown key, replace, empty, scale a number."""
    raw = copy.deepcopy(raw)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = list(_paths(raw))[1:]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        parent, key = _at(raw, path[:-1]), path[-1]
        op = data.draw(st.sampled_from(["drop", "unknown", "replace", "replace", "empty", "scale"]), label="op")
        if op == "drop":
            del parent[key]
        elif op == "unknown":
            target = parent[key] if isinstance(parent[key], dict) else parent if isinstance(parent, dict) else raw
            target[data.draw(st.sampled_from(["zz_unknown", "sheme", "rounds ", "nmae", "cut_layer"]))] = \
                copy.deepcopy(data.draw(BAD_VALUES))   # a fresh copy: st.just gives the same object each time
        elif op == "empty":
            parent[key] = copy.deepcopy(data.draw(st.sampled_from([[], {}, "", None])))
        elif op == "scale" and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            factor = data.draw(st.sampled_from([-1, 0, 1e9, 1e-9, 10**9, math.nan, math.inf, -math.inf]))
            try:
                parent[key] = parent[key] * factor
            except OverflowError:   # 10**400 * 1e9: a float cannot hold it; the factor is bad enough
                parent[key] = factor
        else:
            parent[key] = copy.deepcopy(data.draw(BAD_VALUES, label="value"))
    return raw


# --- what must hold -------------------------------------------------------------------------------

def _path_is_the_users(line: str, raw) -> bool:
    """The path before the first ': ' names the user's keys: no pydantic union tag in it."""
    path = line.split(": ", 1)[0]
    if path.startswith(("(", "--")):
        return True
    node = raw
    for part in path.split("."):
        if isinstance(node, dict) and part in node:   # the user's own key, even one named like a tag ("none")
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif TAG_LIKE.match(part) or part in KINDS:
            return False
        else:
            node = None   # a defaulted block or a missing key: nothing more to compare
    return True


def load_only_refuses(source, raw_for_paths=None) -> cosim.Scenario | None:
    """cosim.load(source): a Scenario, or a bounded ScenarioError whose paths are the user's."""
    try:
        return cosim.load(source)
    except ScenarioError as err:
        text = str(err)
        assert err.problems and len(text) <= MAX_MESSAGE_CHARS, f"{len(text)} characters"
        if raw_for_paths is not None:
            bad = [line for line in err.problems if not _path_is_the_users(line, raw_for_paths)]
            assert not bad, bad
        return None


def _draw_scenario(data, names=None) -> str:
    return data.draw(st.sampled_from(names or sorted(SCENARIOS)), label="scenario")


def _check_mutated_dict(data):
    raw = mutate(data, SCENARIOS[_draw_scenario(data)])
    load_only_refuses(raw, raw)


def _check_mutated_bytes(data, tmp_path: Path):
    text = TEXTS[_draw_scenario(data)].encode()
    op = data.draw(st.sampled_from(["insert", "truncate", "flip", "utf16", "latin1"]), label="bytes op")
    at = data.draw(st.integers(0, len(text)), label="offset")
    if op == "insert":
        text = text[:at] + data.draw(st.binary(min_size=1, max_size=8), label="bytes") + text[at:]
    elif op == "truncate":
        text = text[:at]
    elif op == "flip" and text:
        at = min(at, len(text) - 1)
        text = text[:at] + bytes([text[at] ^ data.draw(st.integers(1, 255))]) + text[at + 1:]
    elif op == "utf16":
        text = text.decode().encode("utf-16")
    else:
        text = text.decode().replace("e", "\u00e9").encode("latin-1", errors="replace")
    path = tmp_path / "mutated.yaml"
    path.write_bytes(text)
    load_only_refuses(path)


def alias_bomb(levels: int, fan_out: int, where: str) -> str:
    """A 'billion laughs' document: each level refers `fan_out` times to the one below."""
    lines = ['l0: &l0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan_out)}]")
    return "\n".join(lines) + f"\n{where}: *l{levels}\n"


def _check_alias_bomb(data, tmp_path: Path):
    levels, fan_out = data.draw(st.integers(2, 14), label="levels"), data.draw(st.integers(2, 12), label="fan out")
    where = data.draw(st.sampled_from(["name", "seed", "devices", "scheme", "sweep"]), label="key")
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(levels, fan_out, where))
    with pytest.raises(ScenarioError) as err:
        cosim.load(path)
    assert len(str(err.value)) <= MAX_MESSAGE_CHARS
    if fan_out ** levels > 20_000:   # well past the expansion budget: refused for the aliases themselves
        assert "alias" in str(err.value)


def _check_duplicate_key(data, tmp_path: Path):
    name = _draw_scenario(data)
    raw = SCENARIOS[name]
    key = data.draw(st.sampled_from(sorted(raw)), label="key")
    value = data.draw(st.sampled_from([raw[key], 0, "x", None]), label="value")
    text = TEXTS[name].rstrip("\n") + f"\n{key}: {json.dumps(value)}\n"   # JSON is YAML on one line
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        cosim.load(path)
    assert f"duplicate key {key!r}" in str(err.value) and "line" in str(err.value)


# --- the fast tier ----------------------------------------------------------------------------------

@_fast(300)
@given(data=st.data())
def test_a_mutated_shipped_scenario_loads_or_is_refused_with_a_scenario_error(data):
    _check_mutated_dict(data)


@_fast(60)
@given(data=st.data())
def test_a_file_with_bad_bytes_loads_or_is_refused_with_a_scenario_error(data, tmp_path_factory):
    _check_mutated_bytes(data, tmp_path_factory.mktemp("bytes"))


@_fast(30)
@given(data=st.data())
def test_an_alias_bomb_is_refused_with_a_short_message(data, tmp_path_factory):
    _check_alias_bomb(data, tmp_path_factory.mktemp("bomb"))


@_fast(30)
@given(data=st.data())
def test_a_duplicate_key_is_refused_naming_the_key_and_its_line(data, tmp_path_factory):
    _check_duplicate_key(data, tmp_path_factory.mktemp("dup"))


@pytest.mark.parametrize("source", [123, None, b"scenarios/tiny.yaml", 1.5, ["a"], "", "a" * 5000, "x\x00y",
                                    "/", "/nonexistent/tiny.yaml"])
def test_anything_that_is_not_a_scenario_is_refused_with_a_scenario_error(source):
    with pytest.raises(ScenarioError):
        cosim.load(source)


def _validate_in_process(path: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["validate", str(path)])
    return code, err.getvalue()


def _check_cli(data, tmp_path: Path):
    name = _draw_scenario(data, TINY)
    raw = mutate(data, SCENARIOS[name])
    if isinstance(raw.get("outputs"), dict):   # validate writes nothing, but keep any run out of the repo
        raw["outputs"]["dir"] = str(tmp_path)
    path = tmp_path / "mutated.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, err = _validate_in_process(path)
    assert code in (0, EXIT_BAD_INPUT), err
    assert "Traceback" not in err
    if code == EXIT_BAD_INPUT:
        assert err.startswith("error: ") and len(err) <= MAX_MESSAGE_CHARS + 8 * (MAX_PROBLEMS + 1)


@_fast(12)
@given(data=st.data())
def test_cosim_validate_of_a_mutated_file_exits_0_or_2_without_a_traceback(data, tmp_path_factory):
    _check_cli(data, tmp_path_factory.mktemp("cli"))


# --- the slow tier: more than 10,000 examples --------------------------------------------------------

@pytest.mark.slow
@_slow(10_000)
@given(data=st.data())
def test_ten_thousand_mutated_scenarios_load_or_are_refused(data):
    _check_mutated_dict(data)


@pytest.mark.slow
@_slow(1_500)
@given(data=st.data())
def test_many_files_with_bad_bytes_alias_bombs_and_duplicate_keys_are_refused(data, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("files")
    check = data.draw(st.sampled_from([_check_mutated_bytes, _check_alias_bomb, _check_duplicate_key]))
    check(data, tmp_path)


@pytest.mark.slow
@_slow(150)
@given(data=st.data())
def test_many_mutated_files_through_cosim_validate_exit_0_or_2(data, tmp_path_factory):
    _check_cli(data, tmp_path_factory.mktemp("cli"))

"""Bad scenarios are refused before the run: exit code 2, one line per problem naming the field,
the value, and what is allowed — never a traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from cosim.cli import main
from conftest import ROOT, tiny_scenario


def _write(tmp_path, raw) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


CASES = {
    "unknown key": (lambda r: r.update(sheme={"name": "fedavg"}), ["sheme", "unknown key", "allowed keys"]),
    "unknown nested key": (lambda r: r["network"]["medium"].update(bandwith_hz=1e6),
                           ["network.medium.bandwith_hz", "unknown key", "bandwidth_hz"]),
    "wrong type": (lambda r: r["scheme"].update(rounds="many"), ["scheme.rounds", "'many'", "integer"]),
    "negative bandwidth": (lambda r: r["network"]["medium"].update(bandwidth_hz=-5e6),
                           ["network.medium.bandwidth_hz", "-5000000.0", "greater than 0"]),
    "cut beyond depth": (lambda r: r["scheme"].update(name="split", cut_layer=9),
                         ["scheme.cut_layer", "9", "1 to 4"]),
    "unknown profile": (lambda r: r["devices"][0].update(profile="nokia-3310"),
                        ["devices.0.profile", "nokia-3310", "jetson-nano"]),
    "unknown scheme": (lambda r: r["scheme"].update(name="fedsgd"), ["scheme.name", "fedsgd", "fedavg"]),
    "device too small for its part": (
        lambda r: (r.update(profiles={"mote": {"peak_flops": 1e9, "utilization": 0.5, "memory_bytes": 1e6,
                                                "compute_power_w": 0.1}}),
                   r["devices"][0].update(profile="mote")),
        ["devices.0.profile", "'mote'", "needs"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_naming_field_value_and_allowed(case, tmp_path, capsys):
    raw = tiny_scenario(tmp_path)
    raw.setdefault("network", {}).setdefault("medium", {})
    mutate, expected = CASES[case]
    mutate(raw)
    command = "validate" if case == "device too small for its part" else "run"
    code = main([command, _write(tmp_path, raw)])
    err = capsys.readouterr().err
    assert code == 2
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    assert "Traceback" not in err


def test_bad_override_from_the_command_line_exits_2_without_traceback(tmp_path):
    raw = tiny_scenario(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "cosim.cli", "run", _write(tmp_path, raw), "--set",
                           "network.medium.bandwidth_hz=-1"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "network.medium.bandwidth_hz" in proc.stderr and "Traceback" not in proc.stderr


def test_every_problem_is_reported_at_once(tmp_path, capsys):
    raw = tiny_scenario(tmp_path)
    raw["scheme"]["rounds"] = 0
    raw["scheme"]["lr"] = -1
    raw.setdefault("network", {})["frequency_hz"] = "fast"
    assert main(["run", _write(tmp_path, raw)]) == 2
    err = capsys.readouterr().err
    assert "scheme.rounds" in err and "scheme.lr" in err and "network.frequency_hz" in err

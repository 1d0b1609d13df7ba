"""Scenario mistakes that used to slip through to the run: SplitFrozen's per-profile cuts, device
heights outside the 3GPP path-loss model's range, and a stalled run told apart from a scheme's error."""
from __future__ import annotations

import pytest

from cosim.run import run
from cosim.scenario import ScenarioError, validate
from cosim.schemes import SCHEMES
from cosim.schemes.base import SchemeConfig, SchemeEntry

from conftest import tiny_scenario


# --- SplitFrozen: per-profile cut layers ---------------------------------------------------------

def _splitfrozen(tmp_path, cut_layers: dict) -> dict:
    raw = tiny_scenario(tmp_path)   # tiny-bert: 4 blocks; one group of jetson-nano devices
    raw["devices"].append({"count": 2, "profile": "raspberry-pi-4", "name": "rpi"})
    raw["scheme"] = {"name": "splitfrozen", "cut_layer": 2, "cut_layers": cut_layers}
    return raw


def test_splitfrozen_per_profile_cuts_inside_the_model_for_profiles_in_use_are_accepted(tmp_path):
    sc = validate(_splitfrozen(tmp_path, {"jetson-nano": 1, "raspberry-pi-4": 4}))
    assert sc.scheme.cut_for("raspberry-pi-4") == 4


@pytest.mark.parametrize("cut_layers,expected", [
    ({"jetson-nano": 9}, ["scheme.cut_layers.jetson-nano", "given 9", "1 to 4"]),
    ({"jetson-nano": 0}, ["scheme.cut_layers.jetson-nano", "given 0", "1 to 4"]),
    ({"jetsn-nano": 1}, ["scheme.cut_layers.jetsn-nano", "'jetsn-nano'", "jetson-nano, raspberry-pi-4"]),
    ({"edge-t4": 1}, ["scheme.cut_layers.edge-t4", "no device group", "jetson-nano, raspberry-pi-4"]),
])
def test_splitfrozen_per_profile_cut_outside_the_model_or_for_no_device_is_refused(tmp_path, cut_layers, expected):
    with pytest.raises(ScenarioError) as err:
        validate(_splitfrozen(tmp_path, cut_layers))
    for text in expected:
        assert text in str(err.value), f"{text!r} not in {err.value}"


# --- device heights against TR 38.901 (Table 7.4.1-1: UMa/UMi 1.5-22.5 m, RMa 1-10 m) -----------

def _heights(tmp_path, model: str, mobility: dict) -> dict:
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 2, "profile": "jetson-nano", "mobility": mobility}]
    raw.setdefault("network", {}).setdefault("channel", {})["pathloss"] = {"model": model}
    return raw


@pytest.mark.parametrize("mobility,field", [
    ({"kind": "static", "height_m": 15.0}, "devices.0.mobility.height_m"),
    ({"kind": "static", "position_m": [50, 0, 12]}, "devices.0.mobility.position_m"),
    ({"kind": "road", "height_m": 15.0}, "devices.0.mobility.height_m"),
    ({"kind": "uav", "mode": "hover", "altitude_m": 50}, "devices.0.mobility.altitude_m"),
])
def test_a_device_above_rma_range_is_refused_before_the_run_naming_the_field(tmp_path, mobility, field):
    with pytest.raises(ScenarioError) as err:
        validate(_heights(tmp_path, "3gpp-rma", mobility))
    assert field in str(err.value) and "1 to 10 m" in str(err.value)


@pytest.mark.parametrize("model,mobility", [
    ("3gpp-uma", {"kind": "static", "height_m": 15.0}),    # inside UMa's 1.5-22.5 m
    ("3gpp-rma", {"kind": "static", "height_m": 1.2}),     # inside RMa's 1-10 m
    ("fspl", {"kind": "uav", "mode": "hover", "altitude_m": 50}),   # free space: any height
])
def test_heights_inside_the_model_range_are_accepted(tmp_path, model, mobility):
    validate(_heights(tmp_path, model, mobility))


def test_a_trace_above_rma_range_runs_instead_of_crashing_mid_run(tmp_path):
    # the trace's z (15 m) is known only when the run reads it: the link holds it inside RMa's range
    trace = tmp_path / "high.csv"
    trace.write_text("t,id,x,y,z\n" + "".join(f"{t},car{k},{40 + 10 * k + t},0,15\n"
                                              for k in range(2) for t in (0, 100000)))
    raw = _heights(tmp_path, "3gpp-rma", {"kind": "trace", "file": str(trace)})
    raw["edge"][0]["position_m"] = [0.0, 0.0, 35.0]    # RMa base-station heights start at 10 m
    raw["scheme"].update(rounds=1, local_steps=1)
    result = run(raw, progress=False, plots=False)
    assert len(result.rounds) == 2   # round 0 (initial model) and round 1


# --- a stalled run is seen on the event queue, not in SimPy's error text -------------------------

class _TestSchemeConfig(SchemeConfig):
    name: str = "test_scheme"


def _with_scheme(monkeypatch, tmp_path, body) -> dict:
    monkeypatch.setitem(SCHEMES, "test_scheme", SchemeEntry("test_scheme", body, _TestSchemeConfig, "test"))
    raw = tiny_scenario(tmp_path)
    raw["scheme"] = {"name": "test_scheme", "rounds": 1}
    return raw


def test_a_run_whose_processes_wait_on_nothing_stops_as_stalled(monkeypatch, tmp_path):
    def waits_forever(sim, cfg):
        yield sim.timeout(2.5)
        yield sim.env.event()   # never triggered: the queue runs dry

    result = run(_with_scheme(monkeypatch, tmp_path, waits_forever), progress=False, plots=False)
    assert result.summary["stop_reason"] == "stalled at t=2.500s: no event left to process"


def test_an_error_in_a_scheme_is_raised_even_when_it_reads_like_simpys_stall(monkeypatch, tmp_path):
    def fails(sim, cfg):
        yield sim.timeout(1.0)
        raise RuntimeError("No scheduled events left in my own queue")

    with pytest.raises(RuntimeError, match="my own queue"):
        run(_with_scheme(monkeypatch, tmp_path, fails), progress=False, plots=False)

"""SFT's headline (arXiv 2501.09237): against state-of-the-art split fine-tuning, fine-tuning delay
−80.2 % and communication −93.6 %, within the memory and accuracy constraints. Here: SFT's
simulated time and bytes after the same rounds as uncompressed, fixed-cut, equal-bandwidth split
fine-tuning on one shared server model (scenarios/compare_sft.yaml), accuracy alongside."""
from __future__ import annotations

import pytest

import cosim
from conftest import ROOT

#: the paper's reductions, and the accuracy SFT may lose against the baseline (our margin)
PAPER_DELAY_CUT, PAPER_BYTES_CUT = 0.802, 0.936
ACCURACY_MARGIN = 0.03


def _table(tmp_path):
    return cosim.compare(ROOT / "scenarios" / "compare_sft.yaml", ["splitfed-uncompressed", "sft"],
                         overrides={"outputs.dir": str(tmp_path), "outputs.progress": False})


@pytest.mark.claims
@pytest.mark.xfail(strict=True, reason=(
    "measured (compare_sft.yaml, seed 11, 4 rounds; 2026-11-25): SFT 15.45 s vs 53.32 s (delay -71.0 %), "
    "60.5 MB vs 509.7 MB (bytes -88.1 %), accuracy 0.750 vs 0.790 — short of the paper's -80.2 % / -93.6 %: "
    "the RPi-4 devices' own compute (~2.7 s a round at cut 1) bounds SFT's round, and the controller "
    "minimises delay, leaving the devices on good links barely compressed (bytes are a side effect). "
    "compression-only reached -52.7 % delay and -95.9 % bytes (accuracy 0.733). Remeasured with the roofline "
    "default, common random numbers and the roofline-timed controller (cosim claims --only sft, 2026-11-26): "
    "13.53 s vs 55.60 s (delay -75.7 %), 53.4 MB vs 412.9 MB (bytes -87.1 %), accuracy 0.763 vs 0.767"))
def test_sft_cuts_delay_and_bytes_against_uncompressed_fixed_cut(tmp_path):
    table = _table(tmp_path)
    base, sft = table.loc["splitfed-uncompressed"], table.loc["sft"]
    delay_cut = 1 - sft.sim_time_s / base.sim_time_s
    bytes_cut = 1 - (sft.bytes_up + sft.bytes_down) / (base.bytes_up + base.bytes_down)
    print(f"\nSFT vs uncompressed fixed cut after {int(sft.rounds)} rounds: delay -{delay_cut:.1%} "
          f"({sft.sim_time_s:.1f} s vs {base.sim_time_s:.1f} s), bytes -{bytes_cut:.1%}, accuracy "
          f"{sft.final_accuracy:.3f} vs {base.final_accuracy:.3f} (paper: -80.2 % delay, -93.6 % bytes)")
    assert sft.final_accuracy >= base.final_accuracy - ACCURACY_MARGIN
    assert delay_cut >= PAPER_DELAY_CUT
    assert bytes_cut >= PAPER_BYTES_CUT

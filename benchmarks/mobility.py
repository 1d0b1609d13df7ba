"""Time 1,000 vehicles over one simulated hour, positions asked every simulated second: the built-in
road model (Poisson arrivals on a 2 km segment) against live SUMO (1,000 random trips on the shipped
4x4 grid, stepped through libsumo with subscriptions), side by side.

Run: python benchmarks/mobility.py [vehicles] [horizon_s]. Needs the `sumo` extra for the SUMO
column (the trips are made with SUMO's randomTrips.py into a temporary folder).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, no install
from cosim.world.mobility import RoadSegment, draw_speed_mps, poisson_arrival_times_s  # noqa: E402


def _query_all(models, horizon_s: float) -> tuple[float, int]:
    """Seconds to ask every model's position at t = 0, 1, ..., horizon; and how many were present."""
    present = 0
    t0 = time.perf_counter()
    for t in range(int(horizon_s)):
        for m in models:
            if m.position_m(float(t)) is not None:
                present += 1
    return time.perf_counter() - t0, present


def road(n: int, horizon_s: float):
    rng = np.random.default_rng(0)
    arrivals = poisson_arrival_times_s(rng, n / horizon_s, n)
    cars = [RoadSegment([-1000, 50], 2000, draw_speed_mps(rng, 15, 25, "truncnorm"), 0.0, False, entry_s=a)
            for a in arrivals]
    return _query_all(cars, horizon_s)


def sumo(n: int, horizon_s: float):
    from cosim.world.mobility.sumo import SumoVehicle, SumoWorld, sumo_home
    home = sumo_home()
    net = ROOT / "scenarios" / "sumo" / "grid.net.xml"
    with tempfile.TemporaryDirectory() as tmp:
        rou, cfg = Path(tmp) / "bench.rou.xml", Path(tmp) / "bench.sumocfg"
        subprocess.run([sys.executable, f"{home}/tools/randomTrips.py", "-n", str(net), "-o", f"{tmp}/bench.trips.xml",
                        "-r", str(rou), "--begin", "0", "--end", str(horizon_s), "--period", str(horizon_s / n),
                        "--seed", "42", "--min-distance", "300", "--validate"], check=True, capture_output=True)
        cfg.write_text(f'<configuration><input><net-file value="{net}"/><route-files value="{rou}"/></input>'
                       f'<time><begin value="0"/><end value="{horizon_s + 600}"/></time></configuration>')
        world = SumoWorld(cfg, 1.0, seed=42)
        cars = [SumoVehicle(world, slot=k) for k in range(n)]
        t0 = time.perf_counter()
        world.advance_to(horizon_s)          # SUMO stepping alone (every vehicle sampled each step)
        step_s = time.perf_counter() - t0
        query_s, present = _query_all(cars, horizon_s)
        world.close()
    return step_s + query_s, present, step_s, len(world.departure_order)


def main(argv):
    n = int(argv[1]) if len(argv) > 1 else 1000
    horizon_s = float(argv[2]) if len(argv) > 2 else 3600.0
    queries = n * int(horizon_s)
    road_s, road_present = road(n, horizon_s)
    print(f"{n} vehicles, {horizon_s:.0f} s simulated, a position query per vehicle per second ({queries:,} queries)")
    print(f"{'model':<8}{'wall s':>9}{'us/query':>10}{'present':>11}  notes")
    print(f"{'road':<8}{road_s:>9.2f}{road_s / queries * 1e6:>10.2f}{road_present:>11,}  Poisson arrivals, 2 km")
    try:
        total_s, present, step_s, departed = sumo(n, horizon_s)
    except ImportError as exc:
        print(f"{'sumo':<8}{'-':>9}  skipped: {exc} (pip install '.[sumo]')")
        return
    print(f"{'sumo':<8}{total_s:>9.2f}{total_s / queries * 1e6:>10.2f}{present:>11,}  "
          f"{departed} departed; SUMO stepping {step_s:.2f} s = {step_s / horizon_s * 1e3:.2f} ms/step, "
          f"queries {total_s - step_s:.2f} s")


if __name__ == "__main__":
    main(sys.argv)

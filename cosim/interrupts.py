"""Signals stop a run cleanly: SIGINT (Ctrl-C) and SIGTERM end a run between two events, with its
rows written, instead of a traceback from wherever the host happened to be.

`stop_on_signals(sim)` holds for one run: a signal only sets `sim.interrupted`, which
`Simulation.drive` reads before each event (a real compute step in progress finishes first), so
the folder is written as at any other stop and `cosim.run` raises `RunInterrupted`, which says where
the run stopped and how to resume it. Outside a run (loading, building) SIGINT is Python's
KeyboardInterrupt; `cosim` on the command line turns SIGTERM into the same and exits 130 either way.

Sweep workers are processes of their own: `worker_init` makes each one stop with its parent
(Linux: the kernel sends it SIGTERM when the parent dies, however it dies; elsewhere a thread
notices the parent is gone), and the parent sends SIGTERM to its workers when it is interrupted, so
each running point stops like a run does.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

#: The exit status of a command stopped by a signal (128 + SIGINT), as shells report Ctrl-C.
EXIT_INTERRUPTED = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal, its folder written up to the event where it stopped."""

    def __init__(self, run_dir: Path, round_: int, sim_time_s: float, reason: str):
        super().__init__(str(run_dir), round_, sim_time_s, reason)
        self.run_dir, self.round, self.sim_time_s, self.reason = Path(run_dir), round_, sim_time_s, reason

    @property
    def where(self) -> str:
        return f"interrupted at round {self.round}, simulated {self.sim_time_s:.6g} s"

    def __str__(self) -> str:
        return f"{self.where}; resume with: cosim run --resume {self.run_dir}"


class BatchInterrupted(KeyboardInterrupt):
    """A sweep or a compare stopped by a signal: `done` of `total` runs finished, listed in
    `table_path` (None when none finished); `run`: the entry's run that was stopped, if any;
    `resume`: the command that goes on with the whole batch (then the run's own is not shown)."""

    def __init__(self, what: str, done: int, total: int, table_path: Path | None,
                 run: RunInterrupted | None = None, resume: str | None = None):
        super().__init__(what, done, total, str(table_path))
        self.what, self.done, self.total, self.run, self.resume = what, done, total, run, resume
        self.table_path = None if table_path is None else Path(table_path)

    def __str__(self) -> str:
        line = f"interrupted: {self.done} of {self.total} {self.what} runs finished"
        if self.table_path is not None:
            line += f", listed in {self.table_path}"
        if self.run is not None:
            line += f"; the run in progress: {self.run.where if self.resume else self.run}"
        if self.resume is not None:
            line += f"; resume with: {self.resume}"
        return line


@contextmanager
def stop_on_signals(sim):
    """While the block runs, SIGINT and SIGTERM set `sim.interrupted` (the run stops before its next
    event) instead of raising wherever the host is. Only the main thread can take signals: from
    another thread the block runs without handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if not sim.interrupted:   # a repeated signal while stopping changes nothing
            sim.interrupted = f"interrupted ({signal.Signals(signum).name})"

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def interruptible():
    """While the block runs (a command), SIGTERM raises KeyboardInterrupt as SIGINT does, so both
    stop the same way wherever the host is (a run replaces both handlers with its own). SIGINT gets
    Python's own handler even when the command started with it ignored (a background job of a
    script: the shell ignores SIGINT for it, and Python then keeps it ignored), so `kill -INT` stops
    a sweep or a compare as it stops a single run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, handler),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


# --- worker processes -----------------------------------------------------------------------------

#: How often a worker without PR_SET_PDEATHSIG checks that its parent is alive, s.
PARENT_POLL_S = 1.0
_PR_SET_PDEATHSIG = 1   # linux/prctl.h


_parent_pid: int | None = None


def parent_gone() -> bool:
    """In a worker set up by `worker_init`: whether the parent that started it has died."""
    return _parent_pid is not None and os.getppid() != _parent_pid


def worker_init() -> None:
    """In a sweep's worker process: ignore SIGINT until a run installs its own handlers (a Ctrl-C at
    the terminal reaches every process of the group; an idle worker should not print a traceback),
    and end with the parent."""
    global _parent_pid
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _parent_pid = os.getppid()
    _die_with_parent(_parent_pid)


def _die_with_parent(parent_pid: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0:
            if os.getppid() != parent_pid:   # the parent died before the request took hold
                os.kill(os.getpid(), signal.SIGTERM)
            return
    except (OSError, AttributeError):
        pass

    def watch():
        while os.getppid() == parent_pid:
            threading.Event().wait(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="cosim-parent-watch", daemon=True).start()


def stop_workers(pids) -> None:
    """SIGTERM each worker process still alive: a running point stops as an interrupted run."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


__all__ = ["BatchInterrupted", "EXIT_INTERRUPTED", "RunInterrupted", "interruptible", "stop_on_signals",
           "stop_workers", "worker_init"]

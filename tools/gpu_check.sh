#!/usr/bin/env bash
# Run on a lent GPU machine (see tools/gpu_prepare.sh) from the repository root, with .whl and .gpu
# carried: the CUDA tests, the batched-clients and W1 benchmarks on the GPU, then the fast suite.
# Each step has its own time limit and writes its log under $OUT, so a slow step loses only itself.
set -u
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
STEPS=${STEPS:-setup,cuda_tests,batched,w1,suite}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.gpu/shim:$PWD COSIM_DATA_CACHE=$PWD/.gpu/sdist HF_HUB_OFFLINE=1 \
       TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 COSIM_TWIN_CACHE_DIR=/tmp/twin
mkdir -p /tmp/minilm && cp -r .gpu/minilm_fp16/. /tmp/minilm/
python3 - <<'PYEOF'
from safetensors.torch import load_file, save_file
w = load_file("/tmp/minilm/model.fp16.safetensors")
save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in w.items()}, "/tmp/minilm/model.safetensors")
PYEOF
rm /tmp/minilm/model.fp16.safetensors
# the `cosim` command for tests that call it (no build isolation: nothing can be fetched here)
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/cosim-bin . >/dev/null 2>&1 \
  && export PATH=/tmp/cosim-bin/bin:$PATH
step() { [[ ",$STEPS," == *",$1,"* ]]; }
{ nvidia-smi -L; nproc; python3 -c "import torch, transformers, peft, cosim; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0)); print('transformers', transformers.__version__, 'peft', peft.__version__, 'cosim', cosim.__file__)"; } 2>&1 | tee "$OUT/setup.log"
if step cuda_tests; then
  timeout 180 python3 -m pytest -q -p no:cacheprovider -rs -m "not claims" tests/test_runtime.py \
    tests/test_batched_clients.py -k "cuda or batched or decoders" 2>&1 | tee "$OUT/cuda_tests.log"
fi
if step batched; then
  timeout 120 python3 benchmarks/batched_clients.py --device cuda --models tiny minilm --clients 1 4 16 --steps 5 \
    2>&1 | tee "$OUT/batched_cuda.log"
fi
if step w1; then
  timeout 200 python3 benchmarks/w1.py --device cuda --repeat 2 --only plain,cosim 2>&1 | tee "$OUT/w1_cuda.log"
fi
if step suite; then
  timeout ${SUITE_S:-200} python3 -m pytest -q -p no:cacheprovider -n 16 --dist worksteal --maxfail 50 \
    2>&1 | tail -80 > "$OUT/suite.log"; tail -30 "$OUT/suite.log"
fi

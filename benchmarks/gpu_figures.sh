#!/usr/bin/env bash
# Every GPU figure issue 19 asks for, in one short device session (about 6 minutes on an
# H100/H200): the paper step in float32 and bfloat16 against PyTorch eager on the same GPU
# with model FLOPs utilisation (and the CPU's nine-tap kernel gradients, `cpu_conv`, against
# cuDNN's), then K = 8 vmapped clients against the loop.
#
#   bash benchmarks/gpu_figures.sh [OUT_DIR]         # on the GPU machine, repo root
#
# The device image has jax[cuda], torch, flax, optax and einops but not ml-collections:
# carry its wheel in .whl/ (the device tool's README says how); this installs what is
# there. MFU is against the stated dense peaks of an H100/H200 SXM: TF32 494.7 and
# bfloat16 989.4 TFLOP/s (JAX's float32 products run in TF32 on these GPUs by default,
# and PyTorch is set to do the same). SMOKE=1 runs the same commands on the tiny model,
# once, on any machine (a check that the script itself works).
set -euo pipefail
out=${1:-${OUT:-benchmarks/results}}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
model=paper repeats=20 batch=8 device=cuda matmul=8192
if [[ "${SMOKE:-0}" == 1 ]]; then model=tiny repeats=1 batch=2 device=cpu matmul=512; fi
log="$out/gpu_figures.md"
{
  echo "# GPU figures ($(date -u +%F), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || true
  python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__)"
  for dtype in float32 bfloat16; do
    peak=494.7; [[ $dtype == bfloat16 ]] && peak=989.4
    python3 benchmarks/step.py --model=$model --batch=$batch --repeats=$repeats --parts \
      --variants=default,cpu_conv --dtype=$dtype --torch-device=$device --peak-tflops=$peak --matmul=$matmul
  done
  python3 benchmarks/step.py --model=$model --batch=$((batch * 4)) --repeats=$repeats \
    --dtype=bfloat16 --torch-device=$device --peak-tflops=989.4 --matmul=$matmul
  python3 benchmarks/clients.py --model=$model --clients=8 --batch=$batch --repeats=$repeats
} 2>&1 | grep -v "^W[0-9]" | tee "$log"

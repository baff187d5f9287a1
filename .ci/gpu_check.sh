#!/usr/bin/env bash
# The device check, run on a lent GPU machine from the repository root (see README):
# the whole test suite (CUDA tests must pass, not skip) and the `gpu` benchmark profile.
# Needs the MNIST files in .data/mnist (carried) and writes logs and results under $OUT.
# The device copy has no git metadata: run it as GDBENCH_COMMIT=<sha> bash .ci/gpu_check.sh.
set -u
export GDBENCH_DATA_DIR="$PWD/.data/mnist" PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gdbench-gpu}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, cupy, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cupy', cupy.__version__, 'numpy', numpy.__version__)" | tee -a "$OUT/gpu.txt"
timeout 240 python3 -m pytest tests -q -p no:cacheprovider --benchmark-disable -rs 2>&1 | tee "$OUT/tests.log" | tail -25
timeout 300 python3 -m pytest bench/benchmarks --benchmark-only --gdbench-profile gpu -q \
  -p no:cacheprovider --benchmark-json="$OUT/gpu-benchmarks.json" \
  --benchmark-columns=median,iqr,rounds 2>&1 | tee "$OUT/bench.log" | grep -E "passed|failed|error" | tail -5
python3 - "$OUT/gpu-benchmarks.json" <<'PY'
import sys
from bench.results import load_results
df = load_results(sys.argv[1])
ep = df[df["kind"] == "epoch"]
ep = ep.assign(s_per_epoch=ep["median_total_s"] * ep["batches_per_epoch"] / ep["steps"])
cols = ["backend", "device", "placement", "pinned", "kernel", "batch_size", "s_per_epoch",
        "median_compute_s", "median_h2d_s", "median_data_move_s", "final_valid_error"]
print(ep[cols].sort_values(["batch_size", "backend", "device"]).to_string(index=False))
res = ep[(ep["device"] == "cuda") & (ep["placement"] == "resident")]
for (backend, B), g in res.groupby(["backend", "batch_size"]):
    eager, fast = g[g["kernel"] == "eager"], g[g["kernel"] != "eager"]
    if len(eager) and len(fast):
        print(f"speed-up {backend} {fast['kernel'].iloc[0]} B={B}: "
              f"{eager['s_per_epoch'].iloc[0] / fast['s_per_epoch'].iloc[0]:.1f}x")
tr = df[df["kind"] == "transfer"]
if len(tr):
    print(tr[["backend", "copy", "rows", "gb_per_s"]].to_string(index=False))
PY

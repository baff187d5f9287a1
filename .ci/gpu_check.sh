#!/usr/bin/env bash
# The device check, run on a lent GPU machine from the repository root (see README): every
# GPU part of the open issues in stages, each with its own time limit, so that one device
# session (15 minutes in all, a few of them to start the machine) covers them in two calls:
#
#   GDBENCH_COMMIT=<sha> bash .ci/gpu_check.sh env tests bench      # about 6-7 minutes
#   GDBENCH_COMMIT=<sha> bash .ci/gpu_check.sh study probe summary  # about 3 minutes
#
# Stages: env (card, driver, library versions), tests (the CUDA/CuPy tests and the kernels'
# NVRTC compile; the CPU emulator's tests are left to CI), bench (the `gpu` benchmark profile:
# epochs of every placement, gather and kernel on the card, steps, time-to-target, transfers,
# the card's floors, NCCL at P = 1), study (time per step on the card for the fair race,
# composed with the CPU study's steps-to-target), probe (bench.tools.gpu_probe: where a streamed
# minibatch's and a resident epoch's time goes), summary (the epochs, floors and targets
# tables of the benchmark JSON). Without arguments: all of them.
#
# Needs the MNIST files in .data/mnist (carried: the device machine has no network) and
# writes logs and results under $OUT. The device copy has no git metadata: GDBENCH_COMMIT
# names the commit in every result.
set -u
export GDBENCH_DATA_DIR="$PWD/.data/mnist" PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gdbench-gpu}"
mkdir -p "$OUT"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(env tests bench study probe summary)
stamp() { echo "== $1 $(date -u +%H:%M:%S) (load $(cut -d' ' -f1 /proc/loadavg))"; }

for stage in "${stages[@]}"; do
  stamp "$stage"
  case "$stage" in
    env)
      nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem \
        --format=csv | tee "$OUT/gpu.txt"
      python3 -c "from bench.machine import machine_id; print('machine id (commit its runs under results/<id>/):', machine_id())" \
        | tee -a "$OUT/gpu.txt"
      python3 - <<'PY' | tee -a "$OUT/gpu.txt"
import cupy, numpy, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cupy", cupy.__version__,
      "numpy", numpy.__version__, "sms", torch.cuda.get_device_properties(0).multi_processor_count)
PY
      ;;
    tests)
      timeout 200 python3 -m pytest tests -q -p no:cacheprovider --benchmark-disable -rs \
        --ignore=tests/test_cuda_emu.py --ignore=tests/test_cuda_kernels.py \
        -k "cuda or cupy or gpu" 2>&1 | tee "$OUT/tests.log" | tail -30
      timeout 60 python3 -m pytest tests/test_cuda_kernels.py -q -p no:cacheprovider -rs \
        -k "nvrtc" 2>&1 | tee -a "$OUT/tests.log" | tail -5
      ;;
    bench)
      timeout 420 python3 -m pytest bench/benchmarks --benchmark-only --gdbench-profile gpu -q \
        -p no:cacheprovider --benchmark-storage=/tmp/gd-storage --benchmark-save=gpu-profile \
        --benchmark-json="$OUT/gpu-benchmarks.json" --benchmark-columns=median,iqr,rounds \
        2>&1 | tee "$OUT/bench.log" | grep -E "passed|failed|error|gdbench:|MISSED|holds" \
        | tail -40
      ;;
    study)
      # about 90 s; the study's ~90 record files come back packed (results/study/ unpacks it)
      timeout 150 python3 -m bench.study --timing-only --name h200-timing --out /tmp/gd-study \
        --steps-from cpu-epyc-2vcpu --max-seconds 75 \
        --backends torch:cuda,torch:cuda:cuda-graph,cupy:cuda,cupy:cuda:fused,cupy:cuda:persistent,cupy:cuda:rows \
        2>&1 | tee "$OUT/study.log" | tail -40
      tar -C /tmp/gd-study -czf "$OUT/h200-timing.tgz" h200-timing
      ;;
    probe)
      timeout 150 python3 -m bench.tools.gpu_probe --out "$OUT/probe.json" 2>&1 \
        | tee "$OUT/probe.log" | tail -60
      ;;
    summary)
      python3 - "$OUT/gpu-benchmarks.json" <<'PY' 2>&1 | tee "$OUT/summary.txt"
import sys
import pandas as pd
from bench.results import epoch_seconds, load_results
from bench.targets import evaluate, verdict
pd.set_option("display.width", 200)
df = load_results(sys.argv[1])
if df.empty or "kind" not in df:
    sys.exit(f"summary: no benchmark records in {sys.argv[1]} (did the bench stage run here, "
             "on a GPU?)")
ep = df[df["kind"] == "epoch"].copy()
ep["s_per_epoch"] = epoch_seconds(ep, evaluation=False)
cols = [c for c in ("backend", "model", "placement", "pinned", "gather", "kernel", "cfg_order",
                    "batch_size", "s_per_epoch", "median_h2d_s", "median_data_move_s",
                    "rel_iqr", "final_valid_error") if c in ep]
keys = [c for c in ("model", "batch_size", "backend") if c in ep]
print(ep[cols].sort_values(keys).to_string(index=False))
fl = df[df["kind"] == "floor"]
show = [c for c in ("floor", "device", "event_best_s", "event_median_s", "event_iqr_s",
                    "gb_per_s", "gflop_per_s", "read_floor_epoch_s", "note") if c in fl]
print(fl[show].to_string(index=False) if len(fl) else "no floors in this file")
t = evaluate(df)
for _, r in t.iterrows():
    print(f"{verdict(r):10s} {r.ratio:8.3g} (limit {r.limit:g})  {r.subject}: {r.target}")
PY
      ;;
    *)
      echo "unknown stage $stage: choose env tests bench study probe summary" >&2
      exit 2
      ;;
  esac
done
stamp done

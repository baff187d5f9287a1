"""The CuPy backend's CUDA kernels (``impls/cuda/*.cu``) run on the CPU emulator
(``tests/cuda_emu``): the exact source text NVRTC compiles, against the float64 reference step
(``bench.workload.models.softmax.reference_step``) and against each other; and compiled by nvcc (and
NVRTC where its library is found) for sm_90 with no local-memory spills.

Registers per thread, nvcc 13.0 -arch=sm_90 (2026-11), none spills: sgd_fused.cu 32 (2,560 B
static shared), sgd_persistent.cu 72 at NT = 256 (46,520 B), sgd_rows.cu 80 (grad, 25,408 B)
and 31 (update).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.workload.models import softmax as L
from impls.cuda import KERNEL_DIR, csr_rows, kernel_defines, kernel_options, kernel_source
from tests.conftest import random_mnist
from tests.cuda_emu import EmulatorError, compile, gxx_missing_reason

FUSED_SIGNATURE = ("const float*, const long long*, float*, float*, double*, long long, int, "
                   "int, float, float, float")
PERSISTENT_SIGNATURE = ("const int*, const short*, const float*, const long long*, "
                        "const long long*, int, float*, float*, double*, long long, int, int, "
                        "float, float, float")
N_ROWS = 1000
LR = 0.01
PENALTIES = {"plain": (0.0, 0.0), "l1l2": (1e-4, 1e-3)}

needs_gxx = pytest.mark.skipif(gxx_missing_reason() is not None,
                               reason=gxx_missing_reason() or "")


@pytest.fixture(scope="module")
def rows() -> tuple[np.ndarray, np.ndarray]:
    """The first rows of the real training set (GDBENCH_DATA_DIR), else sparse synthetic ones."""
    if os.environ.get("GDBENCH_DATA_DIR"):
        from bench.workload.datasets.mnist import load_mnist

        train = load_mnist().train
        return (np.ascontiguousarray(train.x[:N_ROWS], np.float32),
                np.ascontiguousarray(train.y[:N_ROWS], np.int64))
    data = random_mnist(n_train=N_ROWS, seed=4).train
    x = np.where(np.random.default_rng(5).random(data.x.shape) < 0.8, 0, data.x)
    return x.astype(np.float32), data.y.astype(np.int64)


def _start(n_in: int = L.N_IN) -> tuple[np.ndarray, np.ndarray]:
    W, _ = L.init_params("random", seed=3, n_in=n_in)
    b = np.random.default_rng(4).normal(0, 0.01, 10)
    return W.astype(np.float32), b.astype(np.float32)


def _order(kind: str) -> np.ndarray | None:
    return None if kind == "in-order" else np.random.default_rng(6).permutation(N_ROWS)


def _reference(x, y, order, B, n_steps, W, b, l1, l2, first_step=0):
    """float64 steps ``first_step ..`` of the epoch; returns (W, b, sum of the steps' mean NLL)."""
    W, b = W.astype(np.float64), b.astype(np.float64)
    total = 0.0
    for s in range(first_step, first_step + n_steps):
        pos = np.arange(s * B, (s + 1) * B)
        idx = pos if order is None else order[pos]
        total += L.negative_log_likelihood(x[idx], y[idx], W, b)
        W, b = L.reference_step(x[idx], y[idx], W, b, LR, l1, l2)
    return W, b, total


def _assert_close(W, b, cost, want, rtol=1e-4):
    Wr, br, cr = want
    np.testing.assert_allclose(W, Wr, rtol=rtol, atol=rtol * np.abs(Wr).max())
    np.testing.assert_allclose(b, br, rtol=rtol, atol=rtol * np.abs(br).max())
    assert cost == pytest.approx(cr, rel=rtol)


def _fused(d: int = L.N_IN):
    """The fused kernel compiled for width ``d`` (D and K given as the backend gives them)."""
    return compile(KERNEL_DIR / "sgd_fused.cu", "sgd_steps", FUSED_SIGNATURE,
                   kernel_defines(d, L.N_OUT))


def _persistent(nt: int = 64, cap: int | None = None, d: int = L.N_IN):
    defines = {"NT": nt} if cap is None else {"NT": nt, "CAP": cap}
    return compile(KERNEL_DIR / "sgd_persistent.cu", "sgd_persistent", PERSISTENT_SIGNATURE,
                   {**defines, **kernel_defines(d, L.N_OUT)})


def run_fused(x, y, order, B, n_steps, W, b, l1, l2, block=64):
    """The fused kernel reads consecutive rows of the gathered epoch."""
    xe = x if order is None else x[order]
    ye = y if order is None else y[order]
    W, b, cost = W.copy(), b.copy(), np.zeros(1)
    _fused(x.shape[1])(1, block, np.ascontiguousarray(xe), np.ascontiguousarray(ye), W, b, cost,
             np.int64(0), np.int32(n_steps), np.int32(B), np.float32(LR), np.float32(l1),
             np.float32(l2))
    return W, b, float(cost[0])


def run_persistent(x, y, order, B, steps, W, b, l1, l2, nt=64, cap=None, schedule=0):
    """``steps``: the (first_step, n_steps) of each launch, in turn on the same W, b."""
    launch = _persistent(nt, cap, x.shape[1])
    indptr, indices, values = csr_rows(x)
    W, b, cost = W.copy(), b.copy(), np.zeros(1)
    order_arg = np.zeros(1, np.int64) if order is None else order.astype(np.int64)
    for first, n in steps:
        launch(1, nt, indptr, indices, values, y, order_arg, np.int32(order is not None),
               W, b, cost, np.int64(first * B), np.int32(n), np.int32(B), np.float32(LR),
               np.float32(l1), np.float32(l2), schedule=schedule)
    return W, b, float(cost[0])


# ---------------------------------------------------------------------- the fused kernel
@needs_gxx
@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("B", [1, 7, 32])
def test_fused_kernel_follows_the_reference(rows, B, penalty):
    x, y = rows
    l1, l2 = PENALTIES[penalty]
    W0, b0 = _start()
    n_steps = 12
    got = run_fused(x, y, _order("shuffle"), B, n_steps, W0, b0, l1, l2)
    _assert_close(*got, _reference(x, y, _order("shuffle"), B, n_steps, W0, b0, l1, l2))


@needs_gxx
@pytest.mark.parametrize("kernel", ["fused", "persistent"])
def test_the_width_is_the_datasets_compile_time_constant(kernel):
    """The same text compiled for the 8x8 digits (D = 64) follows the reference there; without
    D and K the source refuses to compile."""
    rng = np.random.default_rng(7)
    x = np.where(rng.random((N_ROWS, 64)) < 0.5, 0, rng.random((N_ROWS, 64))).astype(np.float32)
    y = rng.integers(0, L.N_OUT, N_ROWS).astype(np.int64)
    W0, b0 = _start(n_in=64)
    order, B, n_steps = _order("shuffle"), 5, 12
    got = (run_fused(x, y, order, B, n_steps, W0, b0, 0.0, 0.0) if kernel == "fused" else
           run_persistent(x, y, order, B, [(0, n_steps)], W0, b0, 0.0, 0.0))
    _assert_close(*got, _reference(x, y, order, B, n_steps, W0, b0, 0.0, 0.0))
    with pytest.raises(EmulatorError, match="-DD=<n_features>"):
        compile(KERNEL_DIR / "sgd_fused.cu", "sgd_steps", FUSED_SIGNATURE)


# ---------------------------------------------------------------------- the persistent kernel
@needs_gxx
@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("order", ["shuffle", "in-order"])
@pytest.mark.parametrize("B", [1, 5, 20, 32])
def test_persistent_kernel_follows_the_reference_and_the_fused_kernel(rows, B, order, penalty):
    x, y = rows
    l1, l2 = PENALTIES[penalty]
    W0, b0 = _start()
    n_steps = 24 if B < 32 else 16
    perm = _order(order)
    want = _reference(x, y, perm, B, n_steps, W0, b0, l1, l2)
    # two launches (a range of steps each, as train_batches runs them): the state carries over
    got = run_persistent(x, y, perm, B, [(0, 7), (7, n_steps - 7)], W0, b0, l1, l2)
    _assert_close(*got, want)
    _assert_close(*got, run_fused(x, y, perm, B, n_steps, W0, b0, l1, l2))


@needs_gxx
@pytest.mark.parametrize("nt, cap, B", [(256, None, 1), (256, None, 20), (128, None, 3),
                                        (32, None, 2), (64, 100, 1), (64, 100, 7)])
def test_persistent_kernel_block_sizes_and_overflowing_buffers(rows, nt, cap, B):
    """The production block (256 threads); one warp; a buffer smaller than a row (CAP = 100:
    the non-zeros past it are read from global memory in line)."""
    x, y = rows
    W0, b0 = _start()
    perm = _order("shuffle")
    n_steps = 9
    got = run_persistent(x, y, perm, B, [(0, n_steps)], W0, b0, *PENALTIES["l1l2"], nt=nt,
                         cap=cap)
    _assert_close(*got, _reference(x, y, perm, B, n_steps, W0, b0, *PENALTIES["l1l2"]))


@needs_gxx
@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("schedule", [1, 2, 3, 7])
@pytest.mark.parametrize("B", [1, 20])
def test_persistent_kernel_does_not_depend_on_the_thread_schedule(rows, B, schedule, penalty):
    """Threads run in lockstep backwards, or warp by warp (one warp runs ahead to the next
    __syncthreads) in several orders: a missing barrier changes the result (checked by
    deleting each barrier: B = 1 then differs in bits, B = 20 by 1e-4 or more)."""
    x, y = rows
    W0, b0 = _start()
    perm = _order("shuffle")
    l1, l2 = PENALTIES[penalty]
    a = run_persistent(x, y, perm, B, [(0, 10)], W0, b0, l1, l2)
    c = run_persistent(x, y, perm, B, [(0, 10)], W0, b0, l1, l2, schedule=schedule)
    if B == 1:   # no atomics: bit for bit
        assert np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1]) and a[2] == c[2]
    else:        # the atomics add in another order
        _assert_close(*c, a, rtol=1e-5)


@needs_gxx
def test_persistent_kernel_refuses_a_wrong_launch_loudly(rows):
    x, y = rows
    W0, b0 = _start()
    indptr, indices, values = csr_rows(x)
    launch = _persistent(64)
    for block, B in ((128, 1), (64, 33), (64, 0)):
        W, b, cost = W0.copy(), b0.copy(), np.zeros(1)
        launch(1, block, indptr, indices, values, y, np.zeros(1, np.int64), np.int32(0), W, b,
               cost, np.int64(0), np.int32(3), np.int32(B), np.float32(LR), np.float32(0),
               np.float32(0))
        assert np.isnan(cost[0]) and np.array_equal(W, W0)
    W, b, cost = W0.copy(), b0.copy(), np.zeros(1)      # no steps: W, b unchanged
    launch(1, 64, indptr, indices, values, y, np.zeros(1, np.int64), np.int32(0), W, b, cost,
           np.int64(0), np.int32(0), np.int32(4), np.float32(LR), np.float32(0), np.float32(0))
    assert cost[0] == 0 and np.array_equal(W, W0) and np.array_equal(b, b0)


def test_csr_rows_round_trip():
    x = np.array([[0, 1.5, 0, 2], [0, 0, 0, 0], [3, 0, 0, 4]], np.float32)
    indptr, indices, values = csr_rows(x)
    assert indptr.dtype == np.int32 and indices.dtype == np.int16
    assert indptr.tolist() == [0, 2, 2, 4]
    assert indices.tolist() == [1, 3, 0, 3] and values.tolist() == [1.5, 2, 3, 4]
    with pytest.raises(ValueError, match="at most 32,767 columns"):
        csr_rows(np.zeros((2, 40_000), np.float32))


# ---------------------------------------------------------------------- the rows kernel
ROWS_GRAD_SIGNATURE = ("const float*, const long long*, const long long*, const float*, "
                       "const float*, long long, int, float*, double*")
ROWS_UPDATE_SIGNATURE = "const float*, int, float*, float*, int, float, float, float"


@needs_gxx
@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("B, blocks", [(1, 1), (20, 3), (20, 2), (100, 4)])
def test_rows_kernel_follows_the_reference(rows, B, blocks, penalty):
    """``sgd_rows.cu``: two kernels per step (block partials of X^T G, then the update), rows
    read through the permutation; ``blocks`` below the chunk count makes blocks stride."""
    x, y = rows
    l1, l2 = PENALTIES[penalty]
    sizes = kernel_defines(L.N_IN, L.N_OUT)
    grad = compile(KERNEL_DIR / "sgd_rows.cu", "softmax_rows_grad", ROWS_GRAD_SIGNATURE, sizes)
    update = compile(KERNEL_DIR / "sgd_rows.cu", "softmax_rows_update", ROWS_UPDATE_SIGNATURE,
                     sizes)
    W0, b0 = _start()
    W, b, cost = W0.copy(), b0.copy(), np.zeros(1)
    perm = _order("shuffle").astype(np.int64)
    partial = np.full(blocks * (L.N_IN + 1) * L.N_OUT, np.nan, np.float32)
    n_steps = 6
    for s in range(n_steps):
        grad(blocks, 256, x, y, perm, W, b, np.int64(s * B), np.int32(B), partial, cost)
        update(-(-(L.N_IN + 1) * L.N_OUT // 256), 256, partial, np.int32(blocks), W, b, np.int32(B),
               np.float32(LR), np.float32(l1), np.float32(l2))
    _assert_close(W, b, float(cost[0]), _reference(x, y, perm, B, n_steps, W0, b0, l1, l2))


# ---------------------------------------------------------------------- compiled for the card
SOURCES = sorted(p.name for p in KERNEL_DIR.glob("*.cu"))
SMEM_LIMIT = 48 * 1024   # static shared memory per block


@pytest.mark.parametrize("name", SOURCES)
def test_nvcc_compiles_for_sm90_without_spills(tmp_path, name):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH (the CUDA toolkit is not installed)")
    proc = subprocess.run([nvcc, "-arch=sm_90", "-cubin", "--resource-usage",
                           *kernel_options(L.N_IN, L.N_OUT), "-o",
                           str(tmp_path / "k.cubin"), str(KERNEL_DIR / name)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    frames = re.findall(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes "
                        r"spill loads", out)
    used = re.findall(r"Used (\d+) registers[^\n]*", out)
    kernels = re.findall(r"Compiling entry function '(\w+)'", out)
    assert kernels and len(frames) == len(used) == len(kernels), out
    assert all(f == ("0", "0", "0") for f in frames), out       # no local memory at all
    for line in re.findall(r"Used \d+ registers[^\n]*", out):
        smem = re.search(r"(\d+) bytes smem", line)
        assert smem is None or int(smem.group(1)) <= SMEM_LIMIT, out
    assert all(int(r) <= 255 for r in used), out


def _nvrtc_library() -> str | None:
    if os.environ.get("GDBENCH_NVRTC_LIB"):
        return os.environ["GDBENCH_NVRTC_LIB"]
    for base in sys.path:
        found = sorted(glob.glob(os.path.join(base, "nvidia", "cu*", "lib", "libnvrtc.so*"))
                       + glob.glob(os.path.join(base, "nvidia", "cuda_nvrtc", "lib",
                                                "libnvrtc.so*")))
        if found:
            return found[0]
    return ctypes.util.find_library("nvrtc")


@pytest.mark.parametrize("name", SOURCES)
def test_nvrtc_compiles_the_source_as_cupy_hands_it(name):
    """NVRTC (what CuPy's RawKernel uses) has no implicit headers: the text must stand alone."""
    path = _nvrtc_library()
    if path is None:
        pytest.skip("libnvrtc not found (set GDBENCH_NVRTC_LIB, or install CuPy's NVRTC)")
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        pytest.skip(f"libnvrtc at {path} does not load: {exc}")
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), kernel_source(name[:-3]).encode(),
                                  name.encode(), 0, None, None) == 0
    options = [b"-arch=sm_90", *(o.encode() for o in kernel_options(L.N_IN, L.N_OUT))]
    opts = (ctypes.c_char_p * len(options))(*options)
    rc = lib.nvrtcCompileProgram(prog, len(options), opts)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    if rc == 7 and b"builtins" in log.value:     # NVRTC_ERROR_BUILTIN_OPERATION_FAILURE
        pytest.skip(f"libnvrtc at {path} misses its builtins library: {log.value.decode()}")
    assert rc == 0, log.value.decode()


def test_emulator_errors_are_exceptions_not_crashes():
    if gxx_missing_reason():
        pytest.skip(gxx_missing_reason())
    launch = _persistent(64)
    with pytest.raises(EmulatorError, match="arguments expected"):
        launch(1, 64)
    assert Path(KERNEL_DIR / "sgd_persistent.cu").exists()

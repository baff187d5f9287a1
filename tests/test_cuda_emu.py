"""The CUDA emulator (``tests/cuda_emu``) on small kernels with known answers, including the
errors it must raise instead of hanging."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cuda_emu import EmulatorError, compile, gxx_missing_reason

pytestmark = pytest.mark.skipif(gxx_missing_reason() is not None,
                                reason=gxx_missing_reason() or "")

REDUCE = r"""
extern "C" __global__ void block_sum(const float* __restrict__ x, const int n, double* out,
                                     float* warp_out) {
    __shared__ float part[32];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, n_warps = blockDim.x >> 5;
    float acc = 0.f;
    for (int i = blockIdx.x * blockDim.x + tid; i < n; i += gridDim.x * blockDim.x)
        acc += __ldg(x + i);
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    if (lane == 0) part[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        float v = lane < n_warps ? part[lane] : 0.f;
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (lane == 0) atomicAdd(out, (double)v);
        warp_out[blockIdx.x * 32 + lane] = v;   // the butterfly gives every lane the sum
    }
}
"""


@pytest.mark.parametrize("schedule", [0, 1, 7])
@pytest.mark.parametrize("grid, block", [(1, 32), (1, 96), (3, 64)])
def test_a_block_reduction_with_shuffles_sums(grid, block, schedule):
    launch = compile(REDUCE, "block_sum", "const float*, int, double*, float*")
    x = np.random.default_rng(0).random(1000, dtype=np.float32)
    out = np.zeros(1, np.float64)
    warp_out = np.zeros(grid * 32, np.float32)
    launch(grid, block, x, np.int32(len(x)), out, warp_out, schedule=schedule)
    assert out[0] == pytest.approx(x.astype(np.float64).sum(), rel=1e-5)
    per_block = warp_out.reshape(grid, 32)
    assert (per_block == per_block[:, :1]).all()


SHUFFLES = r"""
extern "C" __global__ void shuffles(int* scan, long long* bcast, unsigned* up, double* xr,
                                    unsigned* ballot) {
    const int lane = threadIdx.x & 31, i = threadIdx.x;
    int v = lane + 1;                                   // inclusive scan with __shfl_up_sync
    for (int d = 1; d < 32; d <<= 1) {
        const int o = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d) v += o;
    }
    scan[i] = v;
    bcast[i] = __shfl_sync(0xffffffffu, (long long)lane << 40, 5);
    up[i] = __shfl_down_sync(0xffffffffu, (unsigned)lane * 3u, 4, 8);   // width 8 segments
    xr[i] = __shfl_xor_sync(0xffffffffu, (double)lane * 0.5, 3);
    ballot[i] = __ballot_sync(0xffffffffu, lane % 3 == 0);
    if (lane < 16) bcast[i] += __shfl_sync(0x0000ffffu, 1ll, 0);        // a half-warp mask
}
"""


def test_shuffles_of_each_type_and_width():
    launch = compile(SHUFFLES, "shuffles", "int*, long long*, unsigned*, double*, unsigned*")
    n = 64
    scan, bcast = np.zeros(n, np.int32), np.zeros(n, np.int64)
    up, xr, ballot = np.zeros(n, np.uint32), np.zeros(n), np.zeros(n, np.uint32)
    launch(1, n, scan, bcast, up, xr, ballot)
    lane = np.arange(n) % 32
    assert scan.tolist() == ((lane + 1) * (lane + 2) // 2).tolist()
    assert bcast.tolist() == ((5 << 40) + (lane < 16)).tolist()
    src = np.where(lane % 8 + 4 < 8, lane + 4, lane)
    assert up.tolist() == (src * 3).tolist()
    assert xr.tolist() == ((lane ^ 3) * 0.5).tolist()
    assert (ballot == sum(1 << k for k in range(0, 32, 3))).all()


ATOMICS = r"""
extern "C" __global__ void histogram(const int* __restrict__ v, const int n, int* hist,
                                     float* fsum, unsigned long long* total) {
    __shared__ int h[16];
    __shared__ float s;
    const int tid = threadIdx.x;
    if (tid < 16) h[tid] = 0;
    if (tid == 0) s = 0.f;
    __syncthreads();
    for (int i = tid; i < n; i += blockDim.x) {
        atomicAdd(&h[v[i] & 15], 1);
        atomicAdd(&s, 0.5f);
        atomicAdd(total, (unsigned long long)v[i]);
    }
    __syncthreads();
    if (tid < 16) hist[blockIdx.x * 16 + tid] = h[tid];
    if (tid == 0) fsum[blockIdx.x] = s;
}
"""


def test_shared_memory_atomics_count_and_blocks_reuse_shared_memory():
    launch = compile(ATOMICS, "histogram", "const int*, int, int*, float*, unsigned long long*")
    v = np.random.default_rng(1).integers(0, 1000, 777).astype(np.int32)
    hist, fsum = np.zeros(32, np.int32), np.zeros(2, np.float32)
    total = np.zeros(1, np.uint64)
    launch(2, 128, v, np.int32(len(v)), hist, fsum, total)
    want = np.bincount(v & 15, minlength=16)
    assert hist.reshape(2, 16).tolist() == [want.tolist()] * 2   # each block starts from 0
    assert fsum.tolist() == [0.5 * len(v)] * 2
    assert int(total[0]) == 2 * int(v.sum())


ERRORS = r"""
extern "C" __global__ void planted(const int which, int* out) {
    const int tid = threadIdx.x, lane = tid & 31;
    int v = tid;
    if (which == 0) { if (tid != 5) __syncthreads(); }              // thread 5 never arrives
    if (which == 1) { if (lane < 16) v = __shfl_down_sync(0xffffffffu, v, 1); }
    if (which == 2) { if (lane < 16) v = __shfl_down_sync(0xffffu, v, 1);     // lane 15 reads
                      }                                                       // lane 16
    if (which == 3) v = __shfl_sync(lane < 16 ? 0xffffu : 0xffffffffu, v, 0); // masks differ
    if (which == 4) { if (tid < 32) __syncthreads(); else if (lane > 0) __syncwarp(); }
    if (which == 5) v = __shfl_sync(0xffffffffu, v, 0);            // in a 40-thread block
    out[tid] = v;
}
"""


@pytest.mark.parametrize("which, block, message", [
    (0, 64, r"deadlock in block 0: .* 63 of 64 threads wait at __syncthreads, 0 at a warp "
            r"barrier, 1 finished"),
    (1, 64, r"deadlock .* lanes 0x0000ffff of mask 0xffffffff"),
    (2, 32, r"lane 15: shuffle reads lane 16, outside its mask 0x0000ffff"),
    (3, 32, r"called a shuffle with mask 0x(0000ffff|ffffffff) while lanes"),
    (4, 64, r"32 of 64 threads wait at __syncthreads, 31 at a warp barrier, 1 finished\. "
            r"warp 1: lanes 0xfffffffe of mask 0xffffffff"),
    (5, 40, r"mask 0xffffffff names lanes that do not exist \(present 0x000000ff\)"),
])
def test_a_planted_error_is_reported_not_hung(which, block, message):
    launch = compile(ERRORS, "planted", "int, int*")
    out = np.zeros(block, np.int32)
    with pytest.raises(EmulatorError, match=message):
        launch(1, block, np.int32(which), out)
    launch(1, 64, np.int32(9), np.zeros(64, np.int32))    # the library is usable afterwards


RACE = r"""
extern "C" __global__ void racy(int* out) {
    __shared__ int a[64];
    a[threadIdx.x] = threadIdx.x;
    // missing __syncthreads(): reads a neighbour's slot that may not be written yet
    out[threadIdx.x] = a[(threadIdx.x + 1) % blockDim.x];
}
"""


WARP_RACE = r"""
extern "C" __global__ void warp_racy(const int salt, int* out) {
    __shared__ int a[64];
    const int lane = threadIdx.x & 31;
    a[threadIdx.x] = salt + __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
    // missing __syncthreads(): reads the other warp's slot
    out[threadIdx.x] = a[(threadIdx.x + 32) % 64] + __shfl_sync(0xffffffffu, lane, 0);
}
"""


def test_the_schedule_reveals_a_missing_barrier():
    launch = compile(RACE, "racy", "int*")
    runs = []
    for schedule in (0, 1):
        out = np.full(64, -1, np.int32)
        launch(1, 64, out, schedule=schedule)
        runs.append(out.copy())
    assert not np.array_equal(runs[0], runs[1])
    # between warps that synchronise within themselves: lockstep rounds hide the race,
    # warp-by-warp schedules show it
    launch = compile(WARP_RACE, "warp_racy", "int, int*")
    fresh = (np.arange(64) + 32) % 64 ^ 1
    for schedule, stale_warp in ((0, 0), (2, 0), (3, 1)):
        out = np.full(64, -1, np.int32)
        launch(1, 64, np.int32(1000 * (schedule + 1)), out, schedule=schedule)
        got = out - 1000 * (schedule + 1)          # the other warp's xor-shuffled index
        stale = np.arange(64) // 32 == stale_warp  # this warp ran before the other wrote
        assert (got[~stale] == fresh[~stale]).all()
        assert (got[stale] != fresh[stale]).all()


def test_arguments_are_checked():
    launch = compile(REDUCE, "block_sum", "const float*, int, double*, float*")
    x, out, w = np.zeros(4, np.float32), np.zeros(1), np.zeros(32, np.float32)
    with pytest.raises(EmulatorError, match="int32 scalar expected"):
        launch(1, 32, x, 4, out, w)
    with pytest.raises(EmulatorError, match="float32 array expected"):
        launch(1, 32, x.astype(np.float64), np.int32(4), out, w)
    with pytest.raises(EmulatorError, match="4 arguments expected"):
        launch(1, 32, x)
    with pytest.raises(EmulatorError, match="1-D launches"):
        launch((1, 2), 32, x, np.int32(4), out, w)
    with pytest.raises(EmulatorError, match="could not build"):
        compile("this is not C++", "nope", "int")

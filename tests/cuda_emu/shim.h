// A CPU emulator for CUDA C kernels (tests only): the same source text NVRTC compiles, built
// with g++. Each CUDA thread of a block is a ucontext coroutine, scheduled round-robin on one
// OS thread (deterministic; atomics are trivially atomic). A thread runs until it reaches a
// synchronisation point (__syncthreads, __syncwarp, a shuffle, a vote) and then yields; blocks
// of a grid run one after another, so a `__shared__` array (a function-local `static`) is one
// block's shared memory. Strict: a barrier some threads never reach, a shuffle with a lane
// missing or one naming a lane outside its mask ends the launch with an error message (never a
// hang). A launch may schedule the threads in lockstep rounds or warp by warp (one warp runs
// ahead to the next __syncthreads), in several orders: a missing barrier then shows up as
// results that depend on the schedule. Not detected: a non-atomic read-modify-write race (a
// thread never yields between its read and its write).
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

struct uint3 { unsigned x, y, z; };
struct dim3 { unsigned x, y, z; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static
#define __constant__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

static uint3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;
static const int warpSize = 32;

namespace emu {

enum State { RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_BARRIER, FINISHED };
enum WarpOp { OP_NONE, OP_SYNCWARP, OP_SHFL, OP_VOTE };
static const char* op_name(int op) {
    return op == OP_SYNCWARP ? "__syncwarp" : op == OP_SHFL ? "a shuffle" : "a vote";
}

struct Thread {
    ucontext_t ctx;
    char* stack = nullptr;
    State state = RUNNABLE;
};

struct Warp {
    unsigned present = 0;   // lanes that exist (a partial last warp has fewer)
    unsigned arrived = 0;   // lanes waiting at the current warp barrier
    unsigned mask = 0;      // the mask the first arriving lane named
    int op = OP_NONE;
    uint64_t slot[32];      // exchange slots of a shuffle / vote
};

static const size_t STACK_BYTES = 64 * 1024;
static std::vector<Thread> threads;
static std::vector<Warp> warps;
static ucontext_t scheduler;
static int current = -1;
static unsigned n_threads = 0, at_block_barrier = 0;
static bool failed = false;
static char message[1024];
static std::function<void()> body;

static void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char* fmt, ...) {
    if (!failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        failed = true;
    }
}

static inline void yield() {
    asm volatile("" ::: "memory");
    swapcontext(&threads[current].ctx, &scheduler);
    asm volatile("" ::: "memory");
}

// A failure inside a thread: record it and never come back (the launch ends).
static void fail_here() {
    threads[current].state = AT_BLOCK_BARRIER;  // not runnable: the scheduler stops at `failed`
    yield();
    abort();  // unreachable: a failed launch never resumes its threads
}

static void entry() {
    body();
    threads[current].state = FINISHED;
    swapcontext(&threads[current].ctx, &scheduler);
}

static void block_barrier() {
    threads[current].state = AT_BLOCK_BARRIER;
    if (++at_block_barrier == n_threads) {  // the last to arrive releases everyone
        for (auto& t : threads) t.state = RUNNABLE;
        at_block_barrier = 0;
    }
    yield();
    if (failed) fail_here();
}

// All lanes of `mask` arrive (same op, same mask); then they all continue.
static void warp_barrier(unsigned mask, int op) {
    const unsigned lane = current & 31;
    Warp& w = warps[current >> 5];
    if (!(mask >> lane & 1u)) {
        fail("thread %d (warp %d lane %u) called %s with mask 0x%08x that does not name its "
             "own lane", current, current >> 5, lane, op_name(op), mask);
        fail_here();
    }
    if (mask & ~w.present) {
        fail("warp %d: %s with mask 0x%08x names lanes that do not exist (present 0x%08x)",
             current >> 5, op_name(op), mask, w.present);
        fail_here();
    }
    if (w.arrived == 0) {
        w.mask = mask;
        w.op = op;
    } else if (w.mask != mask || w.op != op) {
        fail("warp %d: lane %u called %s with mask 0x%08x while lanes 0x%08x wait in %s with "
             "mask 0x%08x", current >> 5, lane, op_name(op), mask, w.arrived,
             op_name(w.op), w.mask);
        fail_here();
    }
    w.arrived |= 1u << lane;
    threads[current].state = AT_WARP_BARRIER;
    if (w.arrived == mask) {
        for (unsigned l = 0; l < 32; ++l)
            if (mask >> l & 1u) threads[(current & ~31) + l].state = RUNNABLE;
        w.arrived = 0;
        w.op = OP_NONE;
    }
    yield();
    if (failed) fail_here();
}

template <class T> static inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    uint64_t u = 0;
    memcpy(&u, &v, sizeof(T));
    return u;
}
template <class T> static inline T from_bits(uint64_t u) {
    T v;
    memcpy(&v, &u, sizeof(T));
    return v;
}

// kind: 0 idx, 1 down, 2 up, 3 xor. Returns the value of the source lane (own value where the
// source falls outside the lane's segment of `width`, as the hardware does).
template <class T> static T shuffle(unsigned mask, T v, int arg, int width, int kind) {
    const int lane = current & 31;
    Warp& w = warps[current >> 5];
    if (width <= 0 || width > 32 || (width & (width - 1))) {
        fail("shuffle width %d is not a power of two in 1..32", width);
        fail_here();
    }
    const int seg = lane & ~(width - 1);
    int src;
    switch (kind) {
        case 0: src = seg + (arg & (width - 1)); break;
        case 1: src = lane + arg; if (src >= seg + width) src = lane; break;
        case 2: src = lane - arg; if (src < seg) src = lane; break;
        default: src = lane ^ arg; if (src >= seg + width) src = lane; break;
    }
    w.slot[lane] = to_bits(v);
    warp_barrier(mask, OP_SHFL);
    if (!(mask >> src & 1u)) {
        fail("warp %d lane %d: shuffle reads lane %d, outside its mask 0x%08x",
             current >> 5, lane, src, mask);
        fail_here();
    }
    const T out = from_bits<T>(w.slot[src]);
    warp_barrier(mask, OP_SHFL);  // nobody overwrites a slot before every lane has read
    return out;
}

static unsigned vote(unsigned mask, bool pred) {
    Warp& w = warps[current >> 5];
    const int lane = current & 31;
    w.slot[lane] = pred ? 1 : 0;
    warp_barrier(mask, OP_VOTE);
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l)
        if ((mask >> l & 1u) && w.slot[l]) ballot |= 1u << l;
    warp_barrier(mask, OP_VOTE);
    return ballot;
}

// Runs `kernel` on a grid of blocks. schedule: 0 round-robin over all threads forwards, 1
// backwards (the warps then run in lockstep); 2 warp by warp: the first warp that can run runs
// until all its lanes block (at __syncthreads), then the next, 3 the same from the last warp,
// >= 4 the same with warps and lanes in a random order seeded by the value. Returns 0, or 1
// with `message` set.
static int launch(dim3 grid, dim3 block, std::function<void()> kernel, int schedule) {
    failed = false;
    message[0] = 0;
    if (block.y != 1 || block.z != 1 || grid.y != 1 || grid.z != 1) {
        fail("the emulator runs 1-D grids and blocks only (got block %ux%ux%u, grid %ux%ux%u)",
             block.x, block.y, block.z, grid.x, grid.y, grid.z);
        return 1;
    }
    if (block.x == 0 || block.x > 1024) {
        fail("blockDim.x = %u: a block has 1..1024 threads", block.x);
        return 1;
    }
    n_threads = block.x;
    blockDim = block;
    gridDim = grid;
    body = kernel;
    threads.assign(n_threads, Thread());
    for (auto& t : threads) t.stack = static_cast<char*>(malloc(STACK_BYTES));
    warps.assign((n_threads + 31) / 32, Warp());
    for (unsigned i = 0; i < n_threads; ++i) warps[i >> 5].present |= 1u << (i & 31);
    std::mt19937 rng(schedule);
    const bool greedy = schedule >= 2;        // one warp runs until it blocks, then the next
    std::vector<int> order, warp_order(warps.size());
    for (unsigned bx = 0; bx < grid.x && !failed; ++bx) {
        blockIdx = {bx, 0, 0};
        at_block_barrier = 0;
        for (auto& w : warps) { w.arrived = 0; w.op = OP_NONE; }
        for (unsigned i = 0; i < n_threads; ++i) {
            Thread& t = threads[i];
            t.state = RUNNABLE;
            getcontext(&t.ctx);
            t.ctx.uc_stack.ss_sp = t.stack;
            t.ctx.uc_stack.ss_size = STACK_BYTES;
            t.ctx.uc_link = nullptr;
            makecontext(&t.ctx, entry, 0);
        }
        for (;;) {
            // The threads of this round: all (round-robin), or the lanes of one warp.
            order.clear();
            if (!greedy) {
                for (unsigned i = 0; i < n_threads; ++i) order.push_back(i);
                if (schedule == 1) std::reverse(order.begin(), order.end());
            } else {
                for (size_t w = 0; w < warps.size(); ++w) warp_order[w] = static_cast<int>(w);
                if (schedule == 3) std::reverse(warp_order.begin(), warp_order.end());
                if (schedule >= 4) std::shuffle(warp_order.begin(), warp_order.end(), rng);
                for (int w : warp_order) {
                    for (unsigned i = w * 32; i < std::min(n_threads, w * 32u + 32); ++i)
                        if (threads[i].state == RUNNABLE) order.push_back(i);
                    if (!order.empty()) break;
                }
                if (schedule >= 4) std::shuffle(order.begin(), order.end(), rng);
            }
            bool ran = false;
            for (int i : order) {
                if (threads[i].state != RUNNABLE) continue;
                ran = true;
                current = i;
                threadIdx = {static_cast<unsigned>(i), 0, 0};
                swapcontext(&scheduler, &threads[i].ctx);
                current = -1;
                if (failed) break;
            }
            if (failed) break;
            unsigned finished = 0, at_block = 0, at_warp = 0;
            for (auto& t : threads) {
                finished += t.state == FINISHED;
                at_block += t.state == AT_BLOCK_BARRIER;
                at_warp += t.state == AT_WARP_BARRIER;
            }
            if (finished == n_threads) break;
            if (!ran) {
                char lanes[256] = "";
                for (size_t w = 0; w < warps.size(); ++w)
                    if (warps[w].arrived) {
                        char one[64];
                        snprintf(one, sizeof one, " warp %zu: lanes 0x%08x of mask 0x%08x;", w,
                                 warps[w].arrived, warps[w].mask);
                        strncat(lanes, one, sizeof lanes - strlen(lanes) - 1);
                    }
                fail("deadlock in block %u: no thread can run; %u of %u threads wait at "
                     "__syncthreads, %u at a warp barrier, %u finished.%s", bx, at_block,
                     n_threads, at_warp, finished, lanes);
                break;
            }
        }
    }
    for (auto& t : threads) free(t.stack);
    threads.clear();
    return failed ? 1 : 0;
}

}  // namespace emu

// ---------------------------------------------------------------- the CUDA device API
static inline void __syncthreads() { emu::block_barrier(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
    emu::warp_barrier(mask, emu::OP_SYNCWARP);
}
static inline void __threadfence_block() { asm volatile("" ::: "memory"); }
static inline void __threadfence() { asm volatile("" ::: "memory"); }

template <class T> static inline T __shfl_sync(unsigned m, T v, int src, int width = 32) {
    return emu::shuffle(m, v, src, width, 0);
}
template <class T> static inline T __shfl_down_sync(unsigned m, T v, unsigned d, int width = 32) {
    return emu::shuffle(m, v, static_cast<int>(d), width, 1);
}
template <class T> static inline T __shfl_up_sync(unsigned m, T v, unsigned d, int width = 32) {
    return emu::shuffle(m, v, static_cast<int>(d), width, 2);
}
template <class T> static inline T __shfl_xor_sync(unsigned m, T v, int lm, int width = 32) {
    return emu::shuffle(m, v, lm, width, 3);
}
static inline unsigned __ballot_sync(unsigned m, int p) { return emu::vote(m, p != 0); }
static inline int __any_sync(unsigned m, int p) { return emu::vote(m, p != 0) != 0; }
static inline int __all_sync(unsigned m, int p) { return emu::vote(m, p != 0) == m; }

template <class T> static inline T atomic_add(T* a, T v) { T old = *a; *a = old + v; return old; }
static inline float atomicAdd(float* a, float v) { return atomic_add(a, v); }
static inline double atomicAdd(double* a, double v) { return atomic_add(a, v); }
static inline int atomicAdd(int* a, int v) { return atomic_add(a, v); }
static inline unsigned atomicAdd(unsigned* a, unsigned v) { return atomic_add(a, v); }
static inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
    return atomic_add(a, v);
}
static inline int atomicMax(int* a, int v) { int old = *a; *a = std::max(old, v); return old; }
static inline int atomicMin(int* a, int v) { int old = *a; *a = std::min(old, v); return old; }

template <class T> static inline T __ldg(const T* p) { return *p; }

// __expf and __logf: glibc declares them (the same functions as expf, logf)
static inline float __fdividef(float a, float b) { return a / b; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }

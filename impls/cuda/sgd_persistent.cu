// The persistent SGD kernel of the CuPy backend (kernel="persistent"): one thread block runs
// n_steps SGD steps of softmax regression on minibatches of B <= 32 rows, with W and b held in
// shared memory for the whole launch and each example read once, as a sparse row, through the
// epoch's permutation. Per step, for the rows x_r of the minibatch (positions first_row + s B
// + r of the epoch; row order[pos], or pos itself when has_order == 0):
//     z_r = b + sum_{c: x_rc != 0} x_rc W[c, :]
//     g_r = softmax(z_r) - onehot(y_r);   cost += (log sum_k exp z_rk - z_r[y_r]) / B  (nats)
//     W <- W - lr (l1 sign(W) + 2 l2 W)            (dense, on the old W; only if l1 or l2)
//     W[c, :] -= (lr / B) x_rc g_r  for each non-zero;   b -= (lr / B) sum_r g_r
// which is the float64 reference step of bench.workload.models.softmax in float32 (another
// summation order: rounding differences only).
//
// Data (device, built once on the host): the training set in CSR form -- indptr (int32,
// N + 1), indices (int16 column numbers, 0..783), values (float32) -- the labels y (int64)
// and the epoch's permutation order (int64; pass any array with has_order = 0 for in-order).
// "No order" is a flag (has_order), not a null pointer: one launch signature, and no reliance on
// how a launcher spells null.
// Launch: grid 1, block NT threads (a compile-time constant, -DNT=...; default 256). A launch
// with another block size, or B outside 1..32, does nothing but set *cost to NaN.
//
// What limits a step, and the shape chosen (H200: ~1.9 GHz, so 1 us ~ 1,900 cycles):
// * A step depends on the previous one (it reads the W that step wrote), so one block loops
//   and the step's latency, not throughput, is the cost. Two block barriers per step (three
//   with a penalty): after the logits (every read of the old W is done) and after the update
//   (the next step reads the new W); a barrier of 8 warps costs some tens of cycles once all
//   arrive.
// * Global loads are the long chain: order -> indptr -> (indices, values), each ~500-800
//   cycles from HBM/L2, i.e. ~1 us if paid in line -- more than the arithmetic of a B = 1
//   step. They are software-pipelined across steps, with no load waited for in the step that
//   issues it: at the top of step s, the last warp's lane r loads order[] for step s + 5,
//   indptr/y of that row for step s + 4 (from the order loaded one step earlier), and stores
//   (scanned into per-step offsets) the row pointers of step s + 3 into a 4-deep meta ring;
//   every thread stores the non-zeros of step s + 1 (held in registers since step s - 1) into
//   a shared double buffer and issues the loads of step s + 2's non-zeros into its registers
//   (PF = CAP / NT slots each). A step then reads only shared memory. The first CAP = 1,024
//   non-zeros of a step are pipelined (all of a B = 1 step: MNIST rows have <= 351); the rest
//   (B >~ 7) are read from global memory in line, a latency paid a few times per step, cheap
//   against the B = 20 budget.
// * Logits: the rows are split over groups of warps: B < NW: NW / B warps per row (B = 1: all
//   threads split the row's ~150 non-zeros), B >= NW: one warp per row, rows strided. Each
//   lane accumulates 10 partial logits from W rows read as float2 (5 x LDS.64), the warp
//   reduces them with shuffles (5 levels x 10 values, independent: the levels' latency
//   overlaps), lane 0 writes them to shared memory; after the barrier every warp of the group
//   sums its row's partials and does the softmax itself (max and sum by 4 xor-shuffle levels
//   over lanes 0..15; lane k holds class k), so no second barrier is needed before the update.
// * Update: g broadcast by 10 shuffles, then each lane scatters its own non-zeros' rows of W
//   (B = 1: plain read-modify-write, the columns of one row are distinct; B > 1: shared-memory
//   atomicAdd, rows share columns). b: lanes 0..9 of the group's first warp.
// Estimate: B = 1 ~ 1,000-1,500 cycles per step (~0.6-0.8 us; target <= 3 us), B = 20 a few
// us (target <= 16 us, i.e. 40 ms per epoch). Shared memory on MNIST: W 31,360 B + buffers 12,288 B +
// meta and partials ~2.9 KB = 46,520 B static (< 48 KB).
// Registers (nvcc 13.0, sm_90, NT = 256): see tests/test_cuda_kernels.py (recorded there).
#ifndef NT
#define NT 256                        // threads per block: a multiple of 32, at most 1024
#endif
#ifndef CAP
#define CAP 1024                      // non-zeros of one step pipelined through shared memory
#endif
// D (pixels per example) and K (classes) come from the dataset, as compiler options
// (impls.cuda.kernel_defines: NVRTC in the CuPy backend, g++ in the emulator tests).
#if !defined(D) || !defined(K)
#error "compile with -DD=<n_features> -DK=<n_classes> (impls.cuda.kernel_defines)"
#endif
#if K > 32 || K % 2 != 0
#error "one lane per class and W rows as float2: K even and <= 32"
#endif
#define MAXB 32
#define NW (NT / 32)
#define PF ((CAP + NT - 1) / NT)      // prefetch slots (registers) per thread
#define MR 4                          // steps in the meta ring
#define FULL 0xffffffffu

// The j-th non-zero of a step (at g in the CSR arrays): from the step's shared buffer when it
// fits there (j < CAP), else from global memory.
__device__ __forceinline__ void step_nonzero(const int j, const int g, const short* cb,
                                             const float* vb, const short* __restrict__ indices,
                                             const float* __restrict__ values, int& c, float& v) {
    if (j < CAP) {
        c = cb[j];
        v = vb[j];
    } else {
        c = __ldg(indices + g);
        v = __ldg(values + g);
    }
}

extern "C" __global__ void __launch_bounds__(NT, 1) sgd_persistent(
        const int* __restrict__ indptr, const short* __restrict__ indices,
        const float* __restrict__ values, const long long* __restrict__ y,
        const long long* __restrict__ order, const int has_order,
        float* W, float* b, double* cost,
        const long long first_row, const int n_steps, const int B,
        const float lr, const float l1, const float l2) {
    __shared__ float2 Ws2[D * K / 2];       // W, row-major (D x K); row c = Ws2[c K/2 ..]
    __shared__ float bs[K];
    __shared__ short bcol[2][CAP];          // the non-zeros of steps s (s & 1) and s + 1
    __shared__ float bval[2][CAP];
    __shared__ int m_off[MR][MAXB + 1];     // row r's non-zeros: flat m_off[r] .. m_off[r + 1]
    __shared__ int m_p0[MR][MAXB];          // row r's first non-zero in the CSR arrays
    __shared__ int m_lab[MR][MAXB];         // row r's label
    __shared__ float part[MAXB * K];        // partial logits: (row r, warp gw of its group)
    float* Ws = reinterpret_cast<float*>(Ws2);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    if (blockDim.x != NT || B < 1 || B > MAXB) {      // uniform: every thread leaves
        if (tid == 0) *cost = nan("");
        return;
    }
    for (int i = tid; i < D * K; i += NT) Ws[i] = W[i];
    if (tid < K) bs[tid] = b[tid];

    const int gsz = B >= NW ? 1 : NW / B;   // warps per row
    const int ngr = NW / gsz;               // rows in flight (groups)
    const int grp = warp / gsz, gw = warp % gsz;
    const bool counts = grp < ngr && gw == 0 && lane == 0;   // adds its rows' NLL to *cost
    const float scale = lr / (float)B;
    const bool penalty = l1 != 0.f || l2 != 0.f;
    double my_cost = 0.0;

    short rc[PF];                           // non-zeros of step s + 2, in flight
    float rv[PF];
    int n_held = 0;
    long long m_row = 0;                    // the last warp's lane r: row of step s + 5
    int m_a = 0, m_e = 0, m_y = 0;          //   its CSR range and label: step s + 4

    for (int s = -5; s < n_steps; ++s) {    // s < 0: the pipeline fills
        // (1) step s + 1's non-zeros: registers -> shared buffer
        const int t1 = s + 1;
        if (t1 >= 0 && t1 < n_steps) {
            #pragma unroll
            for (int i = 0; i < PF; ++i) {
                const int j = tid + i * NT;
                if (j < n_held) {
                    bcol[t1 & 1][j] = rc[i];
                    bval[t1 & 1][j] = rv[i];
                }
            }
        }
        // (2) step s + 2's non-zeros: issue the loads (stored at the top of the next step)
        const int t2 = s + 2;
        if (t2 >= 0 && t2 < n_steps) {
            const int* off = m_off[t2 % MR];
            const int* p0 = m_p0[t2 % MR];
            const int n = min(off[B], CAP);
            n_held = n;
            #pragma unroll
            for (int i = 0; i < PF; ++i) {
                const int j = tid + i * NT;
                if (j < n) {
                    int lo = 0, hi = B;                 // off[lo] <= j < off[hi]
                    while (hi - lo > 1) {
                        const int mid = (lo + hi) >> 1;
                        if (off[mid] <= j) lo = mid; else hi = mid;
                    }
                    const int g = p0[lo] + (j - off[lo]);
                    rc[i] = __ldg(indices + g);
                    rv[i] = __ldg(values + g);
                }
            }
        }
        // (3) the row pipeline, last warp, lane r < B: meta of step s + 3 into the ring,
        //     indptr / y of step s + 4, order of step s + 5
        if (warp == NW - 1) {
            const int t3 = s + 3;
            if (t3 >= 0 && t3 < n_steps) {
                const int len = lane < B ? m_e - m_a : 0;
                int incl = len;
                if (B > 1) {
                    for (int d = 1; d < 32; d <<= 1) {
                        const int o = __shfl_up_sync(FULL, incl, d);
                        if (lane >= d) incl += o;
                    }
                }
                const int q = t3 % MR;
                if (lane < B) {
                    m_off[q][lane] = incl - len;
                    m_p0[q][lane] = m_a;
                    m_lab[q][lane] = m_y;
                }
                if (lane == B - 1) m_off[q][B] = incl;
            }
            const int t4 = s + 4;
            if (t4 >= 0 && t4 < n_steps && lane < B) {
                m_a = __ldg(indptr + m_row);
                m_e = __ldg(indptr + m_row + 1);
                m_y = (int)__ldg(y + m_row);
            }
            const int t5 = s + 5;
            if (t5 < n_steps && lane < B) {
                const long long pos = first_row + (long long)t5 * B + lane;
                m_row = has_order ? __ldg(order + pos) : pos;
            }
        }

        if (s >= 0) {
            const int q = s % MR, buf = s & 1;
            const int* off = m_off[q];
            const int* p0 = m_p0[q];
            // (4) partial logits of the group's rows
            if (grp < ngr) {
                for (int r = grp; r < B; r += ngr) {
                    const int a = off[r], e = off[r + 1];
                    float acc[K];
                    #pragma unroll
                    for (int k = 0; k < K; ++k) acc[k] = 0.f;
                    for (int j = a + gw * 32 + lane; j < e; j += gsz * 32) {
                        int c;
                        float v;
                        step_nonzero(j, p0[r] + (j - a), bcol[buf], bval[buf], indices, values,
                                     c, v);
                        const float2* wr = Ws2 + c * (K / 2);
                        #pragma unroll
                        for (int h = 0; h < K / 2; ++h) {
                            const float2 u = wr[h];
                            acc[2 * h] += v * u.x;
                            acc[2 * h + 1] += v * u.y;
                        }
                    }
                    #pragma unroll
                    for (int o = 16; o > 0; o >>= 1) {
                        #pragma unroll
                        for (int k = 0; k < K; ++k) acc[k] += __shfl_down_sync(FULL, acc[k], o);
                    }
                    if (lane == 0) {
                        #pragma unroll
                        for (int k = 0; k < K; ++k)
                            part[(r * gsz + gw) * K + k] = acc[k] + (gw == 0 ? bs[k] : 0.f);
                    }
                }
            }
            __syncthreads();                    // every read of the old W and b is done
            if (penalty) {                      // dense, elementwise on the old W
                for (int i = tid; i < D * K; i += NT) {
                    const float w = Ws[i];
                    const float sgn = (float)((w > 0.f) - (w < 0.f));
                    Ws[i] = w - lr * (l1 * sgn + 2.f * l2 * w);
                }
                __syncthreads();
            }
            // (5) softmax of each row (every warp of its group), then the sparse update
            if (grp < ngr) {
                for (int r = grp; r < B; r += ngr) {
                    const int a = off[r], e = off[r + 1], yl = m_lab[q][r];
                    const int kk = lane < K ? lane : 0;     // lanes >= 10 repeat class 0
                    float z = 0.f;
                    for (int w = 0; w < gsz; ++w) z += part[(r * gsz + w) * K + kk];
                    float m = z;
                    #pragma unroll
                    for (int o = 8; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(FULL, m, o));
                    const float ez = lane < K ? expf(z - m) : 0.f;
                    float sum = ez;
                    #pragma unroll
                    for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(FULL, sum, o);
                    const float zy = __shfl_sync(FULL, z, yl);
                    if (gw == 0 && lane == 0) my_cost += (double)((logf(sum) - (zy - m)) / B);
                    const float gk = ez / sum - (lane == yl ? 1.f : 0.f);
                    if (gw == 0 && lane < K) {
                        if (B == 1) bs[lane] -= scale * gk;
                        else atomicAdd(&bs[lane], -scale * gk);
                    }
                    float g[K];
                    #pragma unroll
                    for (int k = 0; k < K; ++k) g[k] = __shfl_sync(FULL, gk, k);
                    for (int j = a + gw * 32 + lane; j < e; j += gsz * 32) {
                        int c;
                        float v;
                        step_nonzero(j, p0[r] + (j - a), bcol[buf], bval[buf], indices, values,
                                     c, v);
                        const float sv = scale * v;
                        if (B == 1) {
                            float2* wr = Ws2 + c * (K / 2);
                            #pragma unroll
                            for (int h = 0; h < K / 2; ++h) {
                                float2 u = wr[h];
                                u.x -= sv * g[2 * h];
                                u.y -= sv * g[2 * h + 1];
                                wr[h] = u;
                            }
                        } else {
                            float* wr = Ws + c * K;
                            #pragma unroll
                            for (int k = 0; k < K; ++k) atomicAdd(wr + k, -sv * g[k]);
                        }
                    }
                }
            }
        }
        __syncthreads();                        // the next step reads the new W
    }
    for (int i = tid; i < D * K; i += NT) W[i] = Ws[i];
    if (tid < K) b[tid] = bs[tid];
    if (counts) atomicAdd(cost, my_cost);
}

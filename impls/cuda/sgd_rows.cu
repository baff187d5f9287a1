// Softmax regression, one plain-SGD step on a large minibatch, reading each example once,
// through the epoch's permutation: no gathered copy of the training set.
//
// softmax_rows_grad (grid of blocks of exactly THREADS = 256 threads): the step's rows are cut into chunks of
// ROWS rows; a block takes chunks blockIdx.x, blockIdx.x + gridDim.x, ... and for each
//   1. copies the chunk's rows X[order[first_row + i]] into shared memory (float4 loads;
//      `order` is the epoch's permutation, or the identity for an in-order epoch),
//   2. one warp per row: z = x W + b (lanes split the D pixels, W read through the
//      read-only cache, the 10 sums reduced with xor shuffles so every lane holds them),
//      G = softmax(z) - onehot(y), the row's NLL added to the warp's running sum,
//   3. every thread adds x[d] G[k] for its own pixels d (tid, tid + 256, ...) and all k to
//      registers: the weight gradient X^T G is accumulated without atomics.
// Each block writes its partial sums (D x K + K floats) to its own slice of `partial`;
// the NLL goes to `cost` once per warp (sum of the rows' NLL / n_rows, in double).
//
// softmax_rows_update (one thread per parameter): sums the blocks' partials, then
//   W <- W - lr (gW / n_rows) - lr (l1 sign(W) + 2 l2 W),   b <- b - lr (gb / n_rows)
// which is the reference step (bench.workload.models.softmax) with the penalties on the old W.
//
// Traffic per step on MNIST: the rows once (n_rows x 3,136 bytes), W from L2/L1 per block, and
// grid x 31,400 bytes of partials written and read back: at 264 blocks that is 8.3 MB, so it
// pays from B of a few thousand rows on (B = 5,000 reads 15.7 MB of rows).
// D (pixels per example) and K (classes) come from the dataset, as compiler options
// (impls.cuda.kernel_defines: NVRTC in the CuPy backend, g++ in the emulator tests).
#if !defined(D) || !defined(K)
#error "compile with -DD=<n_features> -DK=<n_classes> (impls.cuda.kernel_defines)"
#endif
#if K > 32
#error "one lane per class: K <= 32"
#endif
#define ROWS 8
#define THREADS 256
#define PER_THREAD ((D + THREADS - 1) / THREADS)   // pixels per thread in the gradient

extern "C" __global__ void softmax_rows_grad(
        const float* __restrict__ X, const long long* __restrict__ y,
        const long long* __restrict__ order, const float* __restrict__ W,
        const float* __restrict__ b, const long long first_row, const int n_rows,
        float* __restrict__ partial, double* cost) {
    __shared__ __align__(16) float xs[ROWS * D];
    __shared__ float gs[ROWS * K];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int n_warps = blockDim.x >> 5;
    float acc[PER_THREAD][K];
    float gb = 0.f;
    #pragma unroll
    for (int j = 0; j < PER_THREAD; ++j)
        #pragma unroll
        for (int k = 0; k < K; ++k) acc[j][k] = 0.f;
    double nll = 0.0;                        // this warp's rows (lane 0's copy counts)
    const int n_chunks = (n_rows + ROWS - 1) / ROWS;
    for (int c = blockIdx.x; c < n_chunks; c += gridDim.x) {
        const int r0 = c * ROWS;
        const int nr = min(ROWS, n_rows - r0);
        // 1. the chunk's rows into shared memory, 16 bytes per load
        for (int i = tid; i < nr * (D / 4); i += blockDim.x) {
            const int r = i / (D / 4), q = i - r * (D / 4);
            const long long row = order[first_row + r0 + r];
            reinterpret_cast<float4*>(xs)[r * (D / 4) + q] =
                __ldg(reinterpret_cast<const float4*>(X + row * D) + q);
        }
        __syncthreads();
        // 2. logits, softmax and G = P - Y: one warp per row
        for (int r = warp; r < nr; r += n_warps) {
            float z[K];
            #pragma unroll
            for (int k = 0; k < K; ++k) z[k] = 0.f;
            for (int d = lane; d < D; d += 32) {
                const float x = xs[r * D + d];
                #pragma unroll
                for (int k = 0; k < K; ++k) z[k] += x * __ldg(W + d * K + k);
            }
            #pragma unroll
            for (int off = 16; off > 0; off >>= 1)
                #pragma unroll
                for (int k = 0; k < K; ++k) z[k] += __shfl_xor_sync(0xffffffffu, z[k], off);
            const long long pos = first_row + r0 + r;
            const int yi = (int)y[order[pos]];
            float m = z[0] + __ldg(b);
            #pragma unroll
            for (int k = 0; k < K; ++k) {
                z[k] += __ldg(b + k);
                m = fmaxf(m, z[k]);
            }
            float sum = 0.f, zy = 0.f, own = 0.f;   // zy: the true class's shifted logit
            #pragma unroll
            for (int k = 0; k < K; ++k) {
                const float t = z[k] - m;
                if (k == yi) zy = t;
                z[k] = expf(t);
                sum += z[k];
                if (k == lane) own = z[k];
            }
            if (lane < K) gs[r * K + lane] = own / sum - (lane == yi ? 1.f : 0.f);
            if (lane == 0) nll += (double)(logf(sum) - zy);   // -log p(y | x)
        }
        __syncthreads();
        // 3. this thread's pixels of X^T G, and G's column sums for b
        for (int r = 0; r < nr; ++r) {
            float g[K];
            #pragma unroll
            for (int k = 0; k < K; ++k) g[k] = gs[r * K + k];
            #pragma unroll
            for (int j = 0; j < PER_THREAD; ++j) {
                const int d = tid + j * THREADS;
                if (d < D) {
                    const float x = xs[r * D + d];
                    #pragma unroll
                    for (int k = 0; k < K; ++k) acc[j][k] += x * g[k];
                }
            }
            if (tid < K) gb += gs[r * K + tid];
        }
        __syncthreads();                      // before the next chunk overwrites xs and gs
    }
    float* out = partial + (long long)blockIdx.x * (D * K + K);
    #pragma unroll
    for (int j = 0; j < PER_THREAD; ++j) {
        const int d = tid + j * THREADS;
        if (d < D)
            #pragma unroll
            for (int k = 0; k < K; ++k) out[d * K + k] = acc[j][k];
    }
    if (tid < K) out[D * K + tid] = gb;
    if (lane == 0 && nll != 0.0) atomicAdd(cost, nll / n_rows);
}

extern "C" __global__ void softmax_rows_update(
        const float* __restrict__ partial, const int n_blocks, float* W, float* b,
        const int n_rows, const float lr, const float l1, const float l2) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= D * K + K) return;
    float s = 0.f;
    for (int blk = 0; blk < n_blocks; ++blk) s += partial[(long long)blk * (D * K + K) + i];
    const float scale = lr / n_rows;
    if (i < D * K) {
        const float w = W[i];
        const float sgn = (float)((w > 0.f) - (w < 0.f));
        W[i] = w - scale * s - lr * (l1 * sgn + 2.f * l2 * w);
    } else {
        b[i - D * K] -= scale * s;
    }
}

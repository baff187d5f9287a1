// The fused SGD kernel of the CuPy backend (kernel="fused"): one thread block runs n_steps
// SGD steps of softmax regression on minibatches of B <= 32 consecutive rows of the resident
// (already shuffled) float32 training set X (N x D), starting at row first_row:
//     z = x W + b;  g = softmax(z) - onehot(y);  cost += mean NLL (double)
//     W <- W - (lr / B) X^T g - lr (l1 sign(W) + 2 l2 W);  b <- b - (lr / B) sum_r g_r
// Logits: one warp per output (row, class), lanes split the D pixels, shuffle reduce;
// softmax one thread per row; the update threads split W's entries (dense).
// Launch: 1 block of a multiple of 32 threads (256 in the backend). Verified on an H200.
// D (pixels per example) and K (classes) come from the dataset, as compiler options
// (impls.cuda.kernel_defines: NVRTC in the CuPy backend, g++ in the emulator tests).
#if !defined(D) || !defined(K)
#error "compile with -DD=<n_features> -DK=<n_classes> (impls.cuda.kernel_defines)"
#endif
#define MAXB 32
extern "C" __global__ void sgd_steps(
        const float* __restrict__ X, const long long* __restrict__ y, float* W, float* b,
        double* cost, const long long first_row, const int n_steps, const int B,
        const float lr, const float l1, const float l2) {
    __shared__ float z[MAXB * K];
    __shared__ float g[MAXB * K];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, n_warps = blockDim.x >> 5;
    const float scale = lr / B;
    for (int s = 0; s < n_steps; ++s) {
        const float* x = X + (first_row + (long long)s * B) * D;
        const long long* ys = y + first_row + (long long)s * B;
        for (int o = warp; o < B * K; o += n_warps) {          // z = x W + b
            const int r = o / K, k = o % K;
            float acc = 0.f;
            for (int d = lane; d < D; d += 32) acc += x[r * D + d] * W[d * K + k];
            for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
            if (lane == 0) z[o] = acc + b[k];
        }
        __syncthreads();
        if (tid < B) {                                          // G = softmax(z) - onehot(y)
            const float* zr = z + tid * K;
            float* gr = g + tid * K;
            float m = zr[0];
            for (int k = 1; k < K; ++k) m = fmaxf(m, zr[k]);
            float sum = 0.f;
            for (int k = 0; k < K; ++k) { gr[k] = expf(zr[k] - m); sum += gr[k]; }
            const int yi = (int)ys[tid];
            atomicAdd(cost, (double)((logf(sum) - (zr[yi] - m)) / B));
            const float inv = 1.f / sum;
            for (int k = 0; k < K; ++k) gr[k] = gr[k] * inv - (k == yi ? 1.f : 0.f);
        }
        __syncthreads();
        for (int i = tid; i < D * K; i += blockDim.x) {         // W -= lr dcost/dW
            const int d = i / K, k = i % K;
            float acc = 0.f;
            for (int r = 0; r < B; ++r) acc += x[r * D + d] * g[r * K + k];
            const float w = W[i];
            const float sgn = (float)((w > 0.f) - (w < 0.f));
            W[i] = w - scale * acc - lr * (l1 * sgn + 2.f * l2 * w);
        }
        if (tid < K) {                                          // b -= lr dcost/db
            float acc = 0.f;
            for (int r = 0; r < B; ++r) acc += g[r * K + tid];
            b[tid] -= scale * acc;
        }
        __syncthreads();
    }
}

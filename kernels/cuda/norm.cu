// Row-wise normalisations: layer norm and softmax, grid-stride over rows, statistics
// accumulated in f32 whatever the storage type.

// Layer norm, a warp per row: the row sits in registers (LN_MAX_VECS 16-byte pieces per lane,
// so up to 2048 bf16 or 1024 f32 values) and the statistics take only shuffles. Used when the
// host has checked that dim is a multiple of 32 pieces and every tensor is 16-byte aligned
// (`per_warp` != 0); else a block per row.
#define LN_MAX_VECS 8

template <typename T>
__device__ __forceinline__ void layer_norm_warp_rows(T* __restrict__ y, const T* __restrict__ x,
                                                     const T* __restrict__ gamma,
                                                     const T* __restrict__ beta, int rows, int dim,
                                                     float eps) {
    constexpr int V = 16 / sizeof(T);
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const int pieces = dim / (32 * V);
    for (int r = blockIdx.x * warps + (threadIdx.x >> 5); r < rows; r += gridDim.x * warps) {
        const T* xr = x + (long long)r * dim;
        float v[LN_MAX_VECS][V];
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < LN_MAX_VECS; ++k) {
            if (k < pieces) {
                load_vec<T, V>(xr + (k * 32 + lane) * V, v[k]);
#pragma unroll
                for (int e = 0; e < V; ++e) s += v[k][e];
            }
        }
        const float mean = warp_sum(s) / (float)dim;
        float var = 0.0f;
#pragma unroll
        for (int k = 0; k < LN_MAX_VECS; ++k) {
            if (k < pieces) {
#pragma unroll
                for (int e = 0; e < V; ++e) {
                    const float d = v[k][e] - mean;
                    var = fmaf(d, d, var);
                }
            }
        }
        const float rstd = rsqrtf(warp_sum(var) / (float)dim + eps);
        T* yr = y + (long long)r * dim;
#pragma unroll
        for (int k = 0; k < LN_MAX_VECS; ++k) {
            if (k < pieces) {
                const int at = (k * 32 + lane) * V;
                float g[V], b[V];
                load_vec<T, V>(gamma + at, g);
                load_vec<T, V>(beta + at, b);
#pragma unroll
                for (int e = 0; e < V; ++e) v[k][e] = (v[k][e] - mean) * rstd * g[e] + b[e];
                store_vec<T, V>(yr + at, v[k]);
            }
        }
    }
}

template <typename T>
__device__ __forceinline__ void layer_norm_block_rows(T* __restrict__ y, const T* __restrict__ x,
                                                      const T* __restrict__ gamma,
                                                      const T* __restrict__ beta, int rows, int dim,
                                                      float eps) {
    __shared__ float scratch[32];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + (long long)r * dim;
        T* yr = y + (long long)r * dim;
        float s = 0.0f;
        for (int d = threadIdx.x; d < dim; d += blockDim.x) s += to_f(xr[d]);
        const float mean = block_sum(s, scratch) / (float)dim;
        float v = 0.0f;
        for (int d = threadIdx.x; d < dim; d += blockDim.x) {
            const float diff = to_f(xr[d]) - mean;
            v += diff * diff;
        }
        const float rstd = rsqrtf(block_sum(v, scratch) / (float)dim + eps);
        for (int d = threadIdx.x; d < dim; d += blockDim.x) {
            yr[d] = from_f<T>((to_f(xr[d]) - mean) * rstd * to_f(gamma[d]) + to_f(beta[d]));
        }
    }
}

#define LAYER_NORM(sfx, T)                                                                     \
    extern "C" __global__ void __launch_bounds__(256) layer_norm_##sfx(                        \
        T* y, const T* x, const T* gamma, const T* beta, int rows, int dim, float eps, int per_warp, \
        u64* stamp) {                                                                          \
        STAMP_IN(stamp);                                                                       \
        if (per_warp)                                                                          \
            layer_norm_warp_rows<T>(y, x, gamma, beta, rows, dim, eps);                         \
        else                                                                                   \
            layer_norm_block_rows<T>(y, x, gamma, beta, rows, dim, eps);                        \
        STAMP_OUT(stamp);                                                                      \
    }
COLOC_FOR_DTYPES(LAYER_NORM)

// y[r, :] = softmax(scale * x[r, :])
template <typename T>
__device__ __forceinline__ void softmax_body(T* __restrict__ y, const T* __restrict__ x, int rows,
                                             int len, float scale, u64* stamp) {
    __shared__ float scratch[32];
    STAMP_IN(stamp);
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + (long long)r * len;
        T* yr = y + (long long)r * len;
        float m = -COLOC_INF;
        for (int j = threadIdx.x; j < len; j += blockDim.x) m = fmaxf(m, scale * to_f(xr[j]));
        m = block_max(m, scratch);
        float s = 0.0f;
        for (int j = threadIdx.x; j < len; j += blockDim.x) s += expf(scale * to_f(xr[j]) - m);
        const float inv = 1.0f / block_sum(s, scratch);
        for (int j = threadIdx.x; j < len; j += blockDim.x) {
            yr[j] = from_f<T>(expf(scale * to_f(xr[j]) - m) * inv);
        }
    }
    STAMP_OUT(stamp);
}

#define SOFTMAX(sfx, T)                                                                        \
    extern "C" __global__ void __launch_bounds__(1024) softmax_##sfx(                          \
        T* y, const T* x, int rows, int len, float scale, u64* stamp) {                        \
        softmax_body<T>(y, x, rows, len, scale, stamp);                                        \
    }
COLOC_FOR_DTYPES(SOFTMAX)

// Row-wise normalisations: layer norm and softmax. One block per row (grid-stride over rows),
// statistics accumulated in f32 whatever the storage type.

template <typename T>
__device__ __forceinline__ void layer_norm_body(T* __restrict__ y, const T* __restrict__ x,
                                                const T* __restrict__ gamma, const T* __restrict__ beta,
                                                int rows, int dim, float eps, u64* stamp) {
    __shared__ float scratch[32];
    STAMP_IN(stamp);
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
    STAMP_OUT(stamp);
}

#define LAYER_NORM(sfx, T)                                                                     \
    extern "C" __global__ void __launch_bounds__(1024) layer_norm_##sfx(                       \
        T* y, const T* x, const T* gamma, const T* beta, int rows, int dim, float eps, u64* stamp) { \
        layer_norm_body<T>(y, x, gamma, beta, rows, dim, eps, stamp);                          \
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

// Convolutional-network operators on NHWC tensors: im2col (for convolution as a cuBLAS
// GEMM), depthwise convolution with fused bias + activation, windowed pooling and global
// average pooling. One thread per output element; channels are innermost, so neighbouring
// threads touch neighbouring addresses.

// col[(n*OH + oh)*OW + ow, (kh*KW + kw)*C + c] = x[n, oh*s - p + kh*d, ow*s - p + kw*d, c], or 0
// outside the image. Rows of col are `col_stride` elements apart (at least KH*KW*C); any
// padding columns are written as zeros, so a GEMM over the padded width adds nothing.
// Block (32, IM2COL_ROWS): threadIdx.y picks a row (an output pixel), whose position is worked
// out once, in 32-bit arithmetic (64-bit division per element made this kernel compute-bound);
// the 32 lanes copy the row in pieces of PIECE elements: 16 bytes where channels, row stride and
// both pointers allow it (every input of a channels-first network but its RGB stem), else one.
#define IM2COL_ROWS 8

template <typename T, int PIECE>
__device__ __forceinline__ void im2col_rows(T* __restrict__ col, const T* __restrict__ x, int n, int h, int w,
                                            int c, int kw, int kcols, int stride, int pad, int dilation, int oh,
                                            int ow, int col_stride) {
    struct alignas(sizeof(T) * PIECE) Piece {
        T v[PIECE];
    };
    const int rows = n * oh * ow;
    const int pieces = col_stride / PIECE;
    for (int row = blockIdx.x * IM2COL_ROWS + threadIdx.y; row < rows; row += gridDim.x * IM2COL_ROWS) {
        const int ox = row % ow, rest = row / ow;
        const int oy = rest % oh, b = rest / oh;
        const int y0 = oy * stride - pad, x0 = ox * stride - pad;
        Piece* dst = reinterpret_cast<Piece*>(col + (long long)row * col_stride);
        for (int p = threadIdx.x; p < pieces; p += 32) {
            const int k = p * PIECE;
            Piece v;
#pragma unroll
            for (int e = 0; e < PIECE; ++e) v.v[e] = from_f<T>(0.0f);
            if (k < kcols) {
                const int ci = k % c, kk = k / c;
                const int iy = y0 + (kk / kw) * dilation, ix = x0 + (kk % kw) * dilation;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                    v = *reinterpret_cast<const Piece*>(x + (((long long)b * h + iy) * w + ix) * c + ci);
            }
            dst[p] = v;
        }
    }
}

template <typename T>
__device__ __forceinline__ void im2col_body(T* __restrict__ col, const T* __restrict__ x, int n, int h,
                                            int w, int c, int kh, int kw, int stride, int pad,
                                            int dilation, int oh, int ow, int col_stride, u64* stamp) {
    STAMP_IN(stamp);
    constexpr int WIDE = 16 / sizeof(T);
    const bool wide = c % WIDE == 0 && col_stride % WIDE == 0 && ((unsigned long long)x & 15) == 0 &&
                      ((unsigned long long)col & 15) == 0;
    if (wide)
        im2col_rows<T, WIDE>(col, x, n, h, w, c, kw, kh * kw * c, stride, pad, dilation, oh, ow, col_stride);
    else
        im2col_rows<T, 1>(col, x, n, h, w, c, kw, kh * kw * c, stride, pad, dilation, oh, ow, col_stride);
    STAMP_OUT(stamp);
}

#define IM2COL(sfx, T)                                                                         \
    extern "C" __global__ void __launch_bounds__(32 * IM2COL_ROWS) im2col_##sfx(                \
        T* col, const T* x, int n, int h, int w, int c, int kh, int kw, int stride, int pad,   \
        int dilation, int oh, int ow, int col_stride, u64* stamp) {                            \
        im2col_body<T>(col, x, n, h, w, c, kh, kw, stride, pad, dilation, oh, ow, col_stride, stamp); \
    }
COLOC_FOR_DTYPES(IM2COL)

// Depthwise convolution and windowed pooling work on channel groups: a thread owns V
// neighbouring channels of one output pixel and moves them in 16-byte accesses, V = 16 /
// sizeof(T), when the host has checked that c is a multiple of V and the tensors are aligned
// (`vec` != 0); else V = 1. Indices are 32-bit (the host checks that every tensor has fewer than
// 2^31 elements): 64-bit division per element made these kernels compute-bound.
struct PixelGroup {
    int b, oy, ox, g;
};

__device__ __forceinline__ PixelGroup pixel_group(int i, int groups, int ow, int oh) {
    PixelGroup r;
    r.g = i % groups;
    int pix = i / groups;
    r.ox = pix % ow;
    pix /= ow;
    r.oy = pix % oh;
    r.b = pix / oh;
    return r;
}

// y[n, oy, ox, c] = act(bias[c] + sum_{ky,kx} x[n, oy*s - p + ky, ox*s - p + kx, c] * w[ky, kx, c])
template <typename T, int V>
__device__ __forceinline__ void depthwise_groups(T* __restrict__ y, const T* __restrict__ x,
                                                 const T* __restrict__ wt, const T* __restrict__ bias,
                                                 int n, int h, int w, int c, int kh, int kw, int stride,
                                                 int pad, int oh, int ow, int act) {
    const int groups = c / V;
    const int total = n * oh * ow * groups;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const PixelGroup o = pixel_group(i, groups, ow, oh);
        const int c0 = o.g * V;
        float acc[V];
        if (bias != 0) {
            load_vec<T, V>(bias + c0, acc);
        } else {
#pragma unroll
            for (int e = 0; e < V; ++e) acc[e] = 0.0f;
        }
        for (int ky = 0; ky < kh; ++ky) {
            const int iy = o.oy * stride - pad + ky;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < kw; ++kx) {
                const int ix = o.ox * stride - pad + kx;
                if (ix < 0 || ix >= w) continue;
                float xv[V], wv[V];
                load_vec<T, V>(x + ((o.b * h + iy) * w + ix) * c + c0, xv);
                load_vec<T, V>(wt + (ky * kw + kx) * c + c0, wv);
#pragma unroll
                for (int e = 0; e < V; ++e) acc[e] = fmaf(xv[e], wv[e], acc[e]);
            }
        }
#pragma unroll
        for (int e = 0; e < V; ++e) acc[e] = apply_act(acc[e], act);
        store_vec<T, V>(y + i * V, acc);
    }
}

#define DEPTHWISE(sfx, T)                                                                      \
    extern "C" __global__ void __launch_bounds__(256) depthwise_conv_##sfx(                    \
        T* y, const T* x, const T* wt, const T* bias, int n, int h, int w, int c, int kh, int kw, \
        int stride, int pad, int oh, int ow, int act, int vec, u64* stamp) {                   \
        STAMP_IN(stamp);                                                                       \
        if (vec)                                                                               \
            depthwise_groups<T, 16 / sizeof(T)>(y, x, wt, bias, n, h, w, c, kh, kw, stride, pad, oh, ow, act); \
        else                                                                                   \
            depthwise_groups<T, 1>(y, x, wt, bias, n, h, w, c, kh, kw, stride, pad, oh, ow, act); \
        STAMP_OUT(stamp);                                                                      \
    }
COLOC_FOR_DTYPES(DEPTHWISE)

// mode 0 = max, 1 = average over the in-image part of the window (padding excluded).
template <typename T, int V>
__device__ __forceinline__ void pool2d_groups(T* __restrict__ y, const T* __restrict__ x, int n, int h,
                                              int w, int c, int kh, int kw, int stride, int pad, int oh,
                                              int ow, int mode) {
    const int groups = c / V;
    const int total = n * oh * ow * groups;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const PixelGroup o = pixel_group(i, groups, ow, oh);
        float acc[V];
#pragma unroll
        for (int e = 0; e < V; ++e) acc[e] = mode == 0 ? -COLOC_INF : 0.0f;
        int count = 0;
        for (int ky = 0; ky < kh; ++ky) {
            const int iy = o.oy * stride - pad + ky;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < kw; ++kx) {
                const int ix = o.ox * stride - pad + kx;
                if (ix < 0 || ix >= w) continue;
                float v[V];
                load_vec<T, V>(x + ((o.b * h + iy) * w + ix) * c + o.g * V, v);
#pragma unroll
                for (int e = 0; e < V; ++e) acc[e] = mode == 0 ? fmaxf(acc[e], v[e]) : acc[e] + v[e];
                ++count;
            }
        }
        if (mode != 0) {
#pragma unroll
            for (int e = 0; e < V; ++e) acc[e] = count > 0 ? acc[e] / (float)count : 0.0f;
        }
        store_vec<T, V>(y + i * V, acc);
    }
}

#define POOL2D(sfx, T)                                                                         \
    extern "C" __global__ void __launch_bounds__(256) pool2d_##sfx(                            \
        T* y, const T* x, int n, int h, int w, int c, int kh, int kw, int stride, int pad, int oh, \
        int ow, int mode, int vec, u64* stamp) {                                               \
        STAMP_IN(stamp);                                                                       \
        if (vec)                                                                               \
            pool2d_groups<T, 16 / sizeof(T)>(y, x, n, h, w, c, kh, kw, stride, pad, oh, ow, mode); \
        else                                                                                   \
            pool2d_groups<T, 1>(y, x, n, h, w, c, kh, kw, stride, pad, oh, ow, mode);           \
        STAMP_OUT(stamp);                                                                      \
    }
COLOC_FOR_DTYPES(POOL2D)

// y[n, c] = mean over hw of x[n, hw, c]
template <typename T>
__device__ __forceinline__ void global_avg_pool_body(T* __restrict__ y, const T* __restrict__ x, int n,
                                                     int hw, int c, u64* stamp) {
    STAMP_IN(stamp);
    const long long total = (long long)n * c;
    for (long long i = global_tid(); i < total; i += grid_stride()) {
        const long long b = i / c;
        const int ci = (int)(i % c);
        float acc = 0.0f;
        for (int p = 0; p < hw; ++p) acc += to_f(x[(b * hw + p) * c + ci]);
        y[i] = from_f<T>(acc / (float)hw);
    }
    STAMP_OUT(stamp);
}

#define GLOBAL_AVG_POOL(sfx, T)                                                                \
    extern "C" __global__ void __launch_bounds__(256) global_avg_pool_##sfx(                   \
        T* y, const T* x, int n, int hw, int c, u64* stamp) {                                  \
        global_avg_pool_body<T>(y, x, n, hw, c, stamp);                                        \
    }
COLOC_FOR_DTYPES(GLOBAL_AVG_POOL)

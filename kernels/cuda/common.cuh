// Shared by every coloc CUDA module: element types, activations, reductions and the
// %globaltimer stamps every kernel writes. NVRTC compiles each module with this text
// prepended, so nothing here may include a system header.
//
// Stamp protocol (one slot = two u64 in device memory, zeroed before use):
//   slot[0] = max over blocks of ~t_in   -> first block in  = ~slot[0]
//   slot[1] = max over blocks of  t_out  -> last block out  =  slot[1]
// Storing the complement of the entry time lets one zeroing memset reset both words.
// A null slot pointer turns instrumentation off (one uniform branch per block).

typedef unsigned short bf16;
typedef unsigned long long u64;

#define COLOC_INF __int_as_float(0x7f800000)

__device__ __forceinline__ float bf16_to_f32(bf16 h) { return __uint_as_float(((unsigned)h) << 16); }

__device__ __forceinline__ bf16 f32_to_bf16(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16)((u >> 16) | 0x40u);  // quiet NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                          // round to nearest even
    return (bf16)(u >> 16);
}

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(bf16 v) { return bf16_to_f32(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float v) { return f32_to_bf16(v); }

__device__ __forceinline__ u64 coloc_now() {
    u64 t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__device__ __forceinline__ unsigned coloc_smid() {
    unsigned s;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
    return s;
}

__device__ __forceinline__ bool coloc_block_leader() {
    return threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0;
}

#define STAMP_IN(stamp)                                                         \
    do {                                                                        \
        if ((stamp) != 0 && coloc_block_leader()) atomicMax(&(stamp)[0], ~coloc_now()); \
    } while (0)

// Every thread of the block must reach STAMP_OUT: kernels never return early.
#define STAMP_OUT(stamp)                                                        \
    do {                                                                        \
        if ((stamp) != 0) {                                                     \
            __syncthreads();                                                    \
            if (coloc_block_leader()) atomicMax(&(stamp)[1], coloc_now());      \
        }                                                                       \
    } while (0)

// Activation codes shared with the host (`Activation` in ops.rs).
#define ACT_NONE 0
#define ACT_RELU 1
#define ACT_RELU6 2
#define ACT_GELU 3
#define ACT_GELU_TANH 4
#define ACT_SILU 5
#define ACT_TANH 6

__device__ __forceinline__ float apply_act(float v, int act) {
    switch (act) {
        case ACT_RELU: return fmaxf(v, 0.0f);
        case ACT_RELU6: return fminf(fmaxf(v, 0.0f), 6.0f);
        case ACT_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
        case ACT_GELU_TANH: {
            float inner = 0.79788456080286536f * (v + 0.044715f * v * v * v);
            return 0.5f * v * (1.0f + tanhf(inner));
        }
        case ACT_SILU: return v / (1.0f + expf(-v));
        case ACT_TANH: return tanhf(v);
        default: return v;
    }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide reductions; `scratch` holds at least 32 floats. All threads get the result.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float r = (lane < warps) ? scratch[lane] : 0.0f;
    return warp_sum(r);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float r = (lane < warps) ? scratch[lane] : -COLOC_INF;
    return warp_max(r);
}

__device__ __forceinline__ long long global_tid() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long grid_stride() {
    return (long long)gridDim.x * blockDim.x;
}

// V neighbouring elements as floats: one 16-byte access when V = 16 / sizeof(T) (the caller
// has checked the alignment), else V scalar ones.
template <typename T, int V>
__device__ __forceinline__ void load_vec(const T* __restrict__ src, float* dst) {
    if constexpr (V * sizeof(T) == 16) {
        const uint4 raw = *reinterpret_cast<const uint4*>(src);
        const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int i = 0; i < V; ++i) dst[i] = to_f(e[i]);
    } else {
#pragma unroll
        for (int i = 0; i < V; ++i) dst[i] = to_f(src[i]);
    }
}

template <typename T, int V>
__device__ __forceinline__ void store_vec(T* __restrict__ dst, const float* src) {
    if constexpr (V * sizeof(T) == 16) {
        uint4 raw;
        T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
        for (int i = 0; i < V; ++i) e[i] = from_f<T>(src[i]);
        *reinterpret_cast<uint4*>(dst) = raw;
    } else {
#pragma unroll
        for (int i = 0; i < V; ++i) dst[i] = from_f<T>(src[i]);
    }
}

// Instantiate a dtype-generic kernel body for f32 and bf16 under `<name>_f32` / `<name>_bf16`.
#define COLOC_FOR_DTYPES(X) X(f32, float) X(bf16, bf16)

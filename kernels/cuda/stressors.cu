// Synthetic stressors for interference characterisation. Each one loads a single resource and
// has knobs for how hard: the grid size (how many SMs / warps take part) and a work amount
// (iterations, passes or steps). Every result is written out so the work cannot be elided and
// so `coloc kernels check` can verify it against a CPU reference.

__device__ __forceinline__ float4 ld_cg_f4(const float4* p) {
    float4 v;
    asm volatile("ld.global.cg.v4.f32 {%0, %1, %2, %3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
                 : "l"(p));
    return v;
}

__device__ __forceinline__ void st_cg_f4(float4* p, float4 v) {
    asm volatile("st.global.cg.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(p), "f"(v.x), "f"(v.y), "f"(v.z),
                 "f"(v.w)
                 : "memory");
}

__device__ __forceinline__ unsigned ld_cg_u32(const unsigned* p) {
    unsigned v;
    asm volatile("ld.global.cg.u32 %0, [%1];" : "=r"(v) : "l"(p));
    return v;
}

// Compute: 8 independent FMA chains per thread, x <- x * 0.999 + 0.001.
// FLOPs = 16 * iters * threads.
extern "C" __global__ void __launch_bounds__(256) stress_fma(float* out, long long iters, u64* stamp) {
    STAMP_IN(stamp);
    const long long t = global_tid();
    float x[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) x[k] = (float)((t + k) & 1023) * (1.0f / 1024.0f);
#pragma unroll 4
    for (long long i = 0; i < iters; ++i) {
#pragma unroll
        for (int k = 0; k < 8; ++k) x[k] = fmaf(x[k], 0.999f, 0.001f);
    }
    out[t] = ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]));
    STAMP_OUT(stamp);
}

__device__ __forceinline__ float4 triad(float4 v, float a, float b) {
    return make_float4(fmaf(v.x, a, b), fmaf(v.y, a, b), fmaf(v.z, a, b), fmaf(v.w, a, b));
}

// DRAM streaming: dst = src * a + b over n4 float4 elements, `passes` times; four 16-byte
// loads in flight per thread. DRAM bytes = 32 * n4 * passes.
extern "C" __global__ void __launch_bounds__(256) stress_stream(float4* __restrict__ dst,
                                                                const float4* __restrict__ src,
                                                                long long n4, int passes, float a,
                                                                float b, u64* stamp) {
    STAMP_IN(stamp);
    const long long tid = global_tid(), stride = grid_stride();
    for (int pass = 0; pass < passes; ++pass) {
        long long i = tid;
        for (; i + 3 * stride < n4; i += 4 * stride) {
            const float4 v0 = src[i], v1 = src[i + stride], v2 = src[i + 2 * stride], v3 = src[i + 3 * stride];
            dst[i] = triad(v0, a, b);
            dst[i + stride] = triad(v1, a, b);
            dst[i + 2 * stride] = triad(v2, a, b);
            dst[i + 3 * stride] = triad(v3, a, b);
        }
        for (; i < n4; i += stride) dst[i] = triad(src[i], a, b);
    }
    STAMP_OUT(stamp);
}

// L2-resident thrash: read-modify-write (+1) of an L2-sized buffer, `passes` times, through
// the L2 (ld/st .cg skip L1). Two elements per step keep two loads in flight.
extern "C" __global__ void __launch_bounds__(256) stress_l2(float4* buf, long long n4, int passes,
                                                            u64* stamp) {
    STAMP_IN(stamp);
    const long long tid = global_tid(), stride = grid_stride();
    for (int pass = 0; pass < passes; ++pass) {
        long long i = tid;
        for (; i + stride < n4; i += 2 * stride) {
            float4 v0 = ld_cg_f4(buf + i), v1 = ld_cg_f4(buf + i + stride);
            v0.x += 1.0f; v0.y += 1.0f; v0.z += 1.0f; v0.w += 1.0f;
            v1.x += 1.0f; v1.y += 1.0f; v1.z += 1.0f; v1.w += 1.0f;
            st_cg_f4(buf + i, v0);
            st_cg_f4(buf + i + stride, v1);
        }
        for (; i < n4; i += stride) {
            float4 v = ld_cg_f4(buf + i);
            v.x += 1.0f; v.y += 1.0f; v.z += 1.0f; v.w += 1.0f;
            st_cg_f4(buf + i, v);
        }
    }
    STAMP_OUT(stamp);
}

// Shared-memory traffic: each thread sums `iters` x 4 words of a 32 KiB shared array.
// `stride` = 1 is conflict-free; stride = 32 makes every warp access a 32-way bank conflict.
#define SMEM_FLOATS 8192
extern "C" __global__ void __launch_bounds__(256) stress_smem(float* out, int iters, int stride, u64* stamp) {
    __shared__ float s[SMEM_FLOATS];
    STAMP_IN(stamp);
    for (int i = threadIdx.x; i < SMEM_FLOATS; i += blockDim.x) s[i] = (float)(i & 63);
    __syncthreads();
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    const unsigned mask = SMEM_FLOATS - 1, base = threadIdx.x * (unsigned)stride, step = blockDim.x;
    for (int it = 0; it < iters; ++it) {
        const unsigned off = base + (unsigned)it * 4u * step;
        a0 += s[off & mask];
        a1 += s[(off + step) & mask];
        a2 += s[(off + 2u * step) & mask];
        a3 += s[(off + 3u * step) & mask];
    }
    out[global_tid()] = (a0 + a1) + (a2 + a3);
    STAMP_OUT(stamp);
}

// Dependent loads: every thread is one pointer chain j <- next[j] over a table of n entries
// (a full-period permutation), `steps` long; out[t] = the final index.
extern "C" __global__ void __launch_bounds__(256) stress_chase(unsigned* out, const unsigned* next,
                                                               long long n, long long steps, u64* stamp) {
    STAMP_IN(stamp);
    const long long t = global_tid();
    unsigned j = (unsigned)(((unsigned long long)t * 2654435761ull) % (unsigned long long)n);
    for (long long s = 0; s < steps; ++s) j = ld_cg_u32(next + j);
    out[t] = j;
    STAMP_OUT(stamp);
}

// Scaled-dot-product attention, fused (scores never reach device memory), with an online
// softmax in f32. Lanes of a warp own the head dimension (DH / 32 values each); a score is a
// warp-wide dot product, four keys at a time so the four shuffle trees overlap.
//
// Prefill: qkv is the packed output of the QKV projection, [B, S, 3, H, DH]; out is
//          [B, S, H, DH]. One warp per query, ATT_WARPS queries per block share K/V tiles
//          staged in shared memory. Grid (ceil(S / ATT_WARPS), H, B).
// Decode:  one new token per sequence; q comes from qkv [B, 3, H, DH], keys and values from the
//          caches [B, H, max_len, DH] over positions [0, len). One block of DEC_THREADS per
//          (b, h), scores in shared memory (see attention_decode_body). Grid (H, B).

#define ATT_WARPS 8
#define ATT_TILE 32
#define DEC_THREADS 256
#define DEC_CHUNK 2048

// Online-softmax update with four scores (already masked to -inf where invalid) and this
// lane's share of the four matching value rows, vv[u][p] = V[key u][lane + 32 * p].
template <int PER>
__device__ __forceinline__ void online_update4(const float s[4], float& m, float& l, float acc[PER],
                                               const float vv[4][PER]) {
    const float m_new = fmaxf(m, fmaxf(fmaxf(s[0], s[1]), fmaxf(s[2], s[3])));
    const float corr = expf(m - m_new);
    float pr[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) pr[u] = expf(s[u] - m_new);
    l = l * corr + ((pr[0] + pr[1]) + (pr[2] + pr[3]));
#pragma unroll
    for (int p = 0; p < PER; ++p) {
        float a = acc[p] * corr;
#pragma unroll
        for (int u = 0; u < 4; ++u) a = fmaf(pr[u], vv[u][p], a);
        acc[p] = a;
    }
    m = m_new;
}

__device__ __forceinline__ void warp_sum4(float s[4]) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
#pragma unroll
        for (int u = 0; u < 4; ++u) s[u] += __shfl_xor_sync(0xffffffffu, s[u], o);
    }
}

template <typename T, int DH>
__device__ __forceinline__ void attention_prefill_body(T* __restrict__ out, const T* __restrict__ qkv,
                                                       int seq, int heads, float scale, int causal,
                                                       u64* stamp) {
    constexpr int PER = DH / 32;
    __shared__ float ks[ATT_TILE][DH];
    __shared__ float vs[ATT_TILE][DH];
    STAMP_IN(stamp);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int h = blockIdx.y, b = blockIdx.z;
    const int qi = blockIdx.x * ATT_WARPS + warp;
    const bool active = qi < seq;
    const long long row = 3LL * heads * DH;  // elements between consecutive tokens
    const long long kv_off = (long long)heads * DH;
    const T* base = qkv + (long long)b * seq * row + (long long)h * DH;

    float q[PER], acc[PER];
#pragma unroll
    for (int p = 0; p < PER; ++p) {
        q[p] = active ? to_f(base[(long long)qi * row + lane + 32 * p]) * scale : 0.0f;
        acc[p] = 0.0f;
    }
    float m = -COLOC_INF, l = 0.0f;
    const int block_last_query = min(seq, (int)(blockIdx.x + 1) * ATT_WARPS) - 1;
    const int kv_len = causal ? block_last_query + 1 : seq;

    for (int k0 = 0; k0 < kv_len; k0 += ATT_TILE) {
        __syncthreads();
        for (int e = threadIdx.x; e < ATT_TILE * DH; e += blockDim.x) {
            const int r = e / DH, d = e % DH, kj = k0 + r;
            float kv = 0.0f, vv = 0.0f;
            if (kj < seq) {
                const T* src = base + (long long)kj * row + d;
                kv = to_f(src[kv_off]);
                vv = to_f(src[2 * kv_off]);
            }
            ks[r][d] = kv;
            vs[r][d] = vv;
        }
        __syncthreads();
        int kmax = min(ATT_TILE, seq - k0);
        if (causal) kmax = min(kmax, qi - k0 + 1);
        if (!active) kmax = 0;
        for (int j = 0; j < kmax; j += 4) {  // j + 3 < ATT_TILE: rows past kmax are masked below
            float s[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                float part = 0.0f;
#pragma unroll
                for (int p = 0; p < PER; ++p) part = fmaf(q[p], ks[j + u][lane + 32 * p], part);
                s[u] = part;
            }
            warp_sum4(s);
#pragma unroll
            for (int u = 0; u < 4; ++u)
                if (j + u >= kmax) s[u] = -COLOC_INF;
            float vv[4][PER];
#pragma unroll
            for (int u = 0; u < 4; ++u)
#pragma unroll
                for (int p = 0; p < PER; ++p) vv[u][p] = vs[j + u][lane + 32 * p];
            online_update4<PER>(s, m, l, acc, vv);
        }
    }
    if (active) {
        T* dst = out + ((long long)(b * seq + qi) * heads + h) * DH;
#pragma unroll
        for (int p = 0; p < PER; ++p) dst[lane + 32 * p] = from_f<T>(acc[p] / l);
    }
    STAMP_OUT(stamp);
}

// Decode reads K and V once each, so it is bound by how many loads are in flight. Scores: one
// thread per key, a row in 16-byte loads. P.V: DH / VEC threads share a value row (VEC dims
// each), DEC_THREADS / (DH / VEC) rows at a time, four in flight per thread. Scores of up to
// DEC_CHUNK keys sit in shared memory; longer caches run chunk after chunk with an online
// softmax between chunks.
template <typename T, int DH>
__device__ __forceinline__ void attention_decode_body(T* __restrict__ out, const T* __restrict__ qkv,
                                                      const T* __restrict__ k_cache,
                                                      const T* __restrict__ v_cache, int heads,
                                                      int max_len, int len, float scale, u64* stamp) {
    constexpr int VEC = 16 / sizeof(T);
    constexpr int NV = DH / VEC;
    constexpr int GROUPS = DEC_THREADS / NV;
    __shared__ __align__(16) float q_s[DH];
    __shared__ float p_s[DEC_CHUNK];
    __shared__ float red[32];
    __shared__ float acc_s[GROUPS][DH];
    STAMP_IN(stamp);
    const int tid = threadIdx.x;
    const int h = blockIdx.x, b = blockIdx.y;
    const T* qrow = qkv + ((long long)b * 3 * heads + h) * DH;
    const T* kb = k_cache + ((long long)b * heads + h) * max_len * DH;
    const T* vb = v_cache + ((long long)b * heads + h) * max_len * DH;
    for (int d = tid; d < DH; d += DEC_THREADS) q_s[d] = to_f(qrow[d]) * scale;
    __syncthreads();
    const int g = tid / NV, col = (tid % NV) * VEC;
    float acc[VEC];
#pragma unroll
    for (int e = 0; e < VEC; ++e) acc[e] = 0.0f;
    float m = -COLOC_INF, l = 0.0f;
    for (int c0 = 0; c0 < len; c0 += DEC_CHUNK) {
        const int n = min(DEC_CHUNK, len - c0);
        float local_max = -COLOC_INF;
        for (int j = tid; j < n; j += DEC_THREADS) {
            const T* kr = kb + (long long)(c0 + j) * DH;
            float kv[NV][VEC];
#pragma unroll
            for (int v = 0; v < NV; ++v) load_vec<T, VEC>(kr + v * VEC, kv[v]);
            float s = 0.0f;
#pragma unroll
            for (int v = 0; v < NV; ++v)
#pragma unroll
                for (int e = 0; e < VEC; ++e) s = fmaf(q_s[v * VEC + e], kv[v][e], s);
            p_s[j] = s;
            local_max = fmaxf(local_max, s);
        }
        const float m_new = fmaxf(m, block_max(local_max, red));
        float local_sum = 0.0f;
        for (int j = tid; j < n; j += DEC_THREADS) {
            const float e = expf(p_s[j] - m_new);
            p_s[j] = e;
            local_sum += e;
        }
        // block_sum's barriers also publish p_s to every thread
        const float sum = block_sum(local_sum, red);
        const float corr = expf(m - m_new);
        l = l * corr + sum;
        m = m_new;
#pragma unroll
        for (int e = 0; e < VEC; ++e) acc[e] *= corr;
        int j = g;
        for (; j + 3 * GROUPS < n; j += 4 * GROUPS) {
            float vv[4][VEC];
#pragma unroll
            for (int u = 0; u < 4; ++u) load_vec<T, VEC>(vb + (long long)(c0 + j + u * GROUPS) * DH + col, vv[u]);
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const float p = p_s[j + u * GROUPS];
#pragma unroll
                for (int e = 0; e < VEC; ++e) acc[e] = fmaf(p, vv[u][e], acc[e]);
            }
        }
        for (; j < n; j += GROUPS) {
            float vv[VEC];
            load_vec<T, VEC>(vb + (long long)(c0 + j) * DH + col, vv);
            const float p = p_s[j];
#pragma unroll
            for (int e = 0; e < VEC; ++e) acc[e] = fmaf(p, vv[e], acc[e]);
        }
        __syncthreads();  // p_s is rewritten by the next chunk
    }
#pragma unroll
    for (int e = 0; e < VEC; ++e) acc_s[g][col + e] = acc[e];
    __syncthreads();
    for (int d = tid; d < DH; d += DEC_THREADS) {
        float o = 0.0f;
#pragma unroll 8
        for (int gg = 0; gg < GROUPS; ++gg) o += acc_s[gg][d];
        out[((long long)b * heads + h) * DH + d] = from_f<T>(o / l);
    }
    STAMP_OUT(stamp);
}

#define ATTENTION_DH(sfx, T, DH)                                                               \
    extern "C" __global__ void __launch_bounds__(ATT_WARPS * 32) attention_prefill_##sfx##_d##DH( \
        T* out, const T* qkv, int seq, int heads, float scale, int causal, u64* stamp) {       \
        attention_prefill_body<T, DH>(out, qkv, seq, heads, scale, causal, stamp);             \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DEC_THREADS) attention_decode_##sfx##_d##DH( \
        T* out, const T* qkv, const T* k_cache, const T* v_cache, int heads, int max_len, int len, \
        float scale, u64* stamp) {                                                             \
        attention_decode_body<T, DH>(out, qkv, k_cache, v_cache, heads, max_len, len, scale, stamp); \
    }

#define ATTENTION(sfx, T) ATTENTION_DH(sfx, T, 32) ATTENTION_DH(sfx, T, 64) ATTENTION_DH(sfx, T, 128)
COLOC_FOR_DTYPES(ATTENTION)

// Scaled-dot-product attention, fused (scores never reach device memory), with an online
// softmax in f32. Lanes of a warp own the head dimension (DH / 32 values each); a score is a
// warp-wide dot product, four keys at a time so the four shuffle trees overlap.
//
// Prefill: qkv is the packed output of the QKV projection, [B, S, 3, H, DH]; out is
//          [B, S, H, DH]. One warp per query, ATT_WARPS queries per block share K/V tiles
//          staged in shared memory. Grid (ceil(S / ATT_WARPS), H, B).
// Decode:  one new token per sequence; q comes from qkv [B, 3, H, DH], keys and values from the
//          caches [B, H, max_len, DH] over positions [0, len). DEC_WARPS warps split the
//          positions of one (b, h) and merge their partial softmax states. Grid (H, B).

#define ATT_WARPS 8
#define ATT_TILE 32
#define DEC_WARPS 4

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

template <typename T, int DH>
__device__ __forceinline__ void attention_decode_body(T* __restrict__ out, const T* __restrict__ qkv,
                                                      const T* __restrict__ k_cache,
                                                      const T* __restrict__ v_cache, int heads,
                                                      int max_len, int len, float scale, u64* stamp) {
    constexpr int PER = DH / 32;
    __shared__ float sm_m[DEC_WARPS], sm_l[DEC_WARPS];
    __shared__ float sm_acc[DEC_WARPS][DH];
    STAMP_IN(stamp);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int h = blockIdx.x, b = blockIdx.y;
    const T* qrow = qkv + ((long long)b * 3 * heads + h) * DH;
    const T* kb = k_cache + ((long long)b * heads + h) * max_len * DH;
    const T* vb = v_cache + ((long long)b * heads + h) * max_len * DH;
    float q[PER], acc[PER];
#pragma unroll
    for (int p = 0; p < PER; ++p) {
        q[p] = to_f(qrow[lane + 32 * p]) * scale;
        acc[p] = 0.0f;
    }
    float m = -COLOC_INF, l = 0.0f;
    for (int j0 = warp * 4; j0 < len; j0 += DEC_WARPS * 4) {
        float s[4], vv[4][PER];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            float part = 0.0f;
            const bool valid = j0 + u < len;
#pragma unroll
            for (int p = 0; p < PER; ++p) {
                const int d = lane + 32 * p;
                const float kv = valid ? to_f(kb[(long long)(j0 + u) * DH + d]) : 0.0f;
                vv[u][p] = valid ? to_f(vb[(long long)(j0 + u) * DH + d]) : 0.0f;
                part = fmaf(q[p], kv, part);
            }
            s[u] = part;
        }
        warp_sum4(s);
#pragma unroll
        for (int u = 0; u < 4; ++u)
            if (j0 + u >= len) s[u] = -COLOC_INF;
        online_update4<PER>(s, m, l, acc, vv);
    }
    if (lane == 0) {
        sm_m[warp] = m;
        sm_l[warp] = l;
    }
#pragma unroll
    for (int p = 0; p < PER; ++p) sm_acc[warp][lane + 32 * p] = acc[p];
    __syncthreads();
    if (warp == 0) {
        float mm = -COLOC_INF;
        for (int w = 0; w < DEC_WARPS; ++w) mm = fmaxf(mm, sm_m[w]);
        float ll = 0.0f, o[PER];
#pragma unroll
        for (int p = 0; p < PER; ++p) o[p] = 0.0f;
        for (int w = 0; w < DEC_WARPS; ++w) {
            const float c = sm_m[w] == -COLOC_INF ? 0.0f : expf(sm_m[w] - mm);
            ll += sm_l[w] * c;
#pragma unroll
            for (int p = 0; p < PER; ++p) o[p] = fmaf(sm_acc[w][lane + 32 * p], c, o[p]);
        }
        T* dst = out + ((long long)b * heads + h) * DH;
#pragma unroll
        for (int p = 0; p < PER; ++p) dst[lane + 32 * p] = from_f<T>(o[p] / ll);
    }
    STAMP_OUT(stamp);
}

#define ATTENTION_DH(sfx, T, DH)                                                               \
    extern "C" __global__ void __launch_bounds__(ATT_WARPS * 32) attention_prefill_##sfx##_d##DH( \
        T* out, const T* qkv, int seq, int heads, float scale, int causal, u64* stamp) {       \
        attention_prefill_body<T, DH>(out, qkv, seq, heads, scale, causal, stamp);             \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DEC_WARPS * 32) attention_decode_##sfx##_d##DH( \
        T* out, const T* qkv, const T* k_cache, const T* v_cache, int heads, int max_len, int len, \
        float scale, u64* stamp) {                                                             \
        attention_decode_body<T, DH>(out, qkv, k_cache, v_cache, heads, max_len, len, scale, stamp); \
    }

#define ATTENTION(sfx, T) ATTENTION_DH(sfx, T, 32) ATTENTION_DH(sfx, T, 64) ATTENTION_DH(sfx, T, 128)
COLOC_FOR_DTYPES(ATTENTION)

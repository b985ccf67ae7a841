// Prefill attention on tensor cores, in the FlashAttention-2 style: bf16 only, compute
// capability 8.0 or newer (mma.sync m16n8k16, ldmatrix, cp.async).
//
// qkv is the packed QKV projection [B, S, 3, H, DH]; out is [B, S, H, DH]. A block of four
// warps owns MMA_BQ = 64 queries of one (b, h); each warp owns 16 of them and keeps their
// Q fragments, running max, running sum and output accumulators in registers for the whole
// kernel. Keys and values stream through shared memory MMA_BK = 64 at a time (two stages
// where they fit in the 48 KiB of static shared memory, so that the next tile's copy overlaps
// this tile's math). Scores S = Q K^T and the output O += P V are both m16n8k16 MMAs with f32
// accumulators; P goes from the score accumulators to the A operand of the second MMA without
// touching shared memory (the two fragment layouts line up). Softmax is online, in base 2,
// f32 throughout; the sum is reduced across the quad only once, at the end.
// Grid (ceil(S / MMA_BQ), H, B), block 128 threads. The qkv pointer must be 16-byte aligned
// (the host checks it): rows are copied in 16-byte pieces.

#define MMA_BQ 64
#define MMA_BK 64
#define MMA_WARPS 4

template <int DH>
struct MmaTiles {
    // Rows padded by 8 elements (16 bytes) so that the fragment loads of a warp fall in
    // distinct banks.
    static constexpr int LD = DH + 8;
    static constexpr int STAGES = DH <= 64 ? 2 : 1;
    bf16 k[STAGES][MMA_BK][LD];
    bf16 v[STAGES][MMA_BK][LD];
};

// Queues the copy of keys and values [k0, k0 + MMA_BK) into stage `st`; rows past the
// sequence are zero-filled.
template <int DH>
__device__ __forceinline__ void load_kv_tile(MmaTiles<DH>& t, int st, const bf16* base, long long row,
                                             long long kv_off, int k0, int seq) {
    constexpr int CHUNKS = DH / 8;  // 16-byte pieces per row
    for (int c = threadIdx.x; c < MMA_BK * CHUNKS; c += MMA_WARPS * 32) {
        const int r = c / CHUNKS, piece = c % CHUNKS, key = k0 + r;
        const bool in = key < seq;
        const bf16* src = in ? base + (long long)key * row + piece * 8 : base;
        cp_async16(&t.k[st][r][piece * 8], src + kv_off, in ? 16 : 0);
        cp_async16(&t.v[st][r][piece * 8], src + 2 * kv_off, in ? 16 : 0);
    }
}

template <int DH>
__device__ __forceinline__ void attention_prefill_mma_body(bf16* __restrict__ out, const bf16* __restrict__ qkv,
                                                           int seq, int heads, float scale, int causal,
                                                           u64* stamp) {
    constexpr int KS = DH / 16;     // k-steps of Q K^T
    constexpr int NT = MMA_BK / 8;  // 8-key column tiles of S
    constexpr int DN = DH / 8;      // 8-wide column tiles of O
    constexpr int STAGES = MmaTiles<DH>::STAGES;
    __shared__ __align__(16) MmaTiles<DH> tiles;
    STAMP_IN(stamp);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, tq = lane & 3;  // row group and thread within the quad
    const int h = blockIdx.y, b = blockIdx.z;
    const int q0 = blockIdx.x * MMA_BQ;
    const long long row = 3LL * heads * DH;
    const long long kv_off = (long long)heads * DH;
    const bf16* base = qkv + (long long)b * seq * row + (long long)h * DH;
    const int rows[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};

    // Q fragments (A operand, row-major): straight from global memory, once.
    unsigned qf[KS][4];
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int qi = rows[r];
                const bf16* src = base + (long long)qi * row + ks * 16 + half * 8 + tq * 2;
                qf[ks][half * 2 + r] = qi < seq ? *reinterpret_cast<const unsigned*>(src) : 0u;
            }
        }
    }

    const float sl2 = scale * 1.44269504088896341f;  // scores in base 2
    float m[2] = {-COLOC_INF, -COLOC_INF}, l[2] = {0.0f, 0.0f};
    float o[DN][4];
#pragma unroll
    for (int dn = 0; dn < DN; ++dn)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[dn][e] = 0.0f;

    const int kv_len = causal ? min(seq, q0 + MMA_BQ) : seq;
    const int n_tiles = (kv_len + MMA_BK - 1) / MMA_BK;
    if (STAGES == 2) {
        load_kv_tile<DH>(tiles, 0, base, row, kv_off, 0, seq);
        cp_async_commit();
    }
    for (int t = 0; t < n_tiles; ++t) {
        const int k0 = t * MMA_BK;
        const int st = STAGES == 2 ? (t & 1) : 0;
        if (STAGES == 2) {
            if (t + 1 < n_tiles) {
                // The other stage was last read in iteration t - 1, which ended in a barrier.
                load_kv_tile<DH>(tiles, (t + 1) & 1, base, row, kv_off, k0 + MMA_BK, seq);
                cp_async_commit();
                cp_async_wait<1>();
            } else {
                cp_async_wait<0>();
            }
        } else {
            load_kv_tile<DH>(tiles, 0, base, row, kv_off, k0, seq);
            cp_async_commit();
            cp_async_wait<0>();
        }
        __syncthreads();

        // S = Q K^T. K rows in shared memory are exactly the column-major B operand.
        float s[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) s[nt][e] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < KS; ++ks) {
                const bf16* kr = &tiles.k[st][nt * 8 + g][ks * 16 + tq * 2];
                mma_bf16_16816(s[nt], qf[ks], *reinterpret_cast<const unsigned*>(kr),
                               *reinterpret_cast<const unsigned*>(kr + 8));
            }
        }

        // Keys past the sequence, and after the query when causal, do not exist.
        const bool ragged = k0 + MMA_BK > seq;
        const bool diagonal = causal && k0 + MMA_BK - 1 > q0 + warp * 16;
        if (ragged || diagonal) {
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int key = k0 + nt * 8 + tq * 2 + (e & 1);
                    if (key >= seq || (causal && key > rows[e >> 1])) s[nt][e] = -COLOC_INF;
                }
        }

        // Online softmax, rows g (r = 0) and g + 8 (r = 1).
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float mx = -COLOC_INF;
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_new = fmaxf(m[r], mx * sl2);
            // A row with no key yet keeps an empty state (never the case with key 0 in tile 0,
            // but -inf - -inf must not become NaN).
            const float m_use = m_new == -COLOC_INF ? 0.0f : m_new;
            const float corr = exp2f(m[r] - m_use);
            float sum = 0.0f;
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const float p = exp2f(fmaf(s[nt][2 * r + e], sl2, -m_use));
                    s[nt][2 * r + e] = p;
                    sum += p;
                }
            l[r] = l[r] * corr + sum;
            m[r] = m_new;
#pragma unroll
            for (int dn = 0; dn < DN; ++dn) {
                o[dn][2 * r] *= corr;
                o[dn][2 * r + 1] *= corr;
            }
        }

        // O += P V. The accumulators of S tiles 2kk and 2kk+1 are the A fragment of k-step kk;
        // V comes in transposed by ldmatrix, two 8-wide column tiles of O per load.
#pragma unroll
        for (int kk = 0; kk < MMA_BK / 16; ++kk) {
            const unsigned a[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]), pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                                   pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                   pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dn = 0; dn < DN; dn += 2) {
                unsigned vb[4];
                ldmatrix_x4_trans(vb, &tiles.v[st][kk * 16 + (lane & 8) + (lane & 7)][(dn + (lane >> 4)) * 8]);
                mma_bf16_16816(o[dn], a, vb[0], vb[1]);
                mma_bf16_16816(o[dn + 1], a, vb[2], vb[3]);
            }
        }
        __syncthreads();  // this stage is refilled next
    }

#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float sum = l[r];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const float inv = 1.0f / sum;
        if (rows[r] < seq) {
            bf16* dst = out + ((long long)(b * seq + rows[r]) * heads + h) * DH + tq * 2;
#pragma unroll
            for (int dn = 0; dn < DN; ++dn)
                *reinterpret_cast<unsigned*>(dst + dn * 8) = pack_bf16x2(o[dn][2 * r] * inv, o[dn][2 * r + 1] * inv);
        }
    }
    STAMP_OUT(stamp);
}

// Four blocks per SM where the registers allow it without spilling (head 64 and below: 128
// registers); head 128 needs more than that and runs with what it needs.
#define MMA_MIN_BLOCKS(DH) ((DH) <= 64 ? 4 : 1)

#define ATTENTION_MMA(sfx, DH)                                                                        \
    extern "C" __global__ void __launch_bounds__(MMA_WARPS * 32, MMA_MIN_BLOCKS(DH))                 \
        attention_prefill_mma_##sfx##_d##DH(                                                          \
        bf16* out, const bf16* qkv, int seq, int heads, float scale, int causal, u64* stamp) {          \
        attention_prefill_mma_body<DH>(out, qkv, seq, heads, scale, causal, stamp);                    \
    }

ATTENTION_MMA(bf16, 32)
ATTENTION_MMA(bf16, 64)
ATTENTION_MMA(bf16, 128)

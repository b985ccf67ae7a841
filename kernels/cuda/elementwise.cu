// Element-wise inference operators: bias + activation, residual add, embedding gather,
// ViT token assembly and KV-cache append. Memory-bound; the vector path moves 16 bytes per
// thread per step when the host has checked sizes and alignment (`vec` != 0).

template <typename T>
__device__ __forceinline__ void bias_act_body(T* __restrict__ y, const T* __restrict__ x,
                                              const T* __restrict__ bias, long long n, int channels,
                                              int act, int vec, u64* stamp) {
    STAMP_IN(stamp);
    const long long tid = global_tid(), stride = grid_stride();
    if (vec) {
        const int V = 16 / sizeof(T);
        const long long nv = n / V;
        for (long long v = tid; v < nv; v += stride) {
            uint4 raw = reinterpret_cast<const uint4*>(x)[v];
            T* e = reinterpret_cast<T*>(&raw);
            int c = (int)((v * V) % channels);
#pragma unroll
            for (int j = 0; j < 16 / (int)sizeof(T); ++j) {
                float f = to_f(e[j]);
                if (bias != 0) f += to_f(bias[c]);
                e[j] = from_f<T>(apply_act(f, act));
                c = (c + 1 == channels) ? 0 : c + 1;
            }
            reinterpret_cast<uint4*>(y)[v] = raw;
        }
    } else {
        for (long long i = tid; i < n; i += stride) {
            float f = to_f(x[i]);
            if (bias != 0) f += to_f(bias[i % channels]);
            y[i] = from_f<T>(apply_act(f, act));
        }
    }
    STAMP_OUT(stamp);
}

#define BIAS_ACT(sfx, T)                                                                       \
    extern "C" __global__ void __launch_bounds__(256) bias_act_##sfx(                          \
        T* y, const T* x, const T* bias, long long n, int channels, int act, int vec, u64* stamp) { \
        bias_act_body<T>(y, x, bias, n, channels, act, vec, stamp);                            \
    }
COLOC_FOR_DTYPES(BIAS_ACT)

template <typename T>
__device__ __forceinline__ void add_act_body(T* __restrict__ y, const T* __restrict__ a,
                                             const T* __restrict__ b, long long n, int act, int vec,
                                             u64* stamp) {
    STAMP_IN(stamp);
    const long long tid = global_tid(), stride = grid_stride();
    if (vec) {
        const long long nv = n / (16 / sizeof(T));
        for (long long v = tid; v < nv; v += stride) {
            uint4 ra = reinterpret_cast<const uint4*>(a)[v];
            uint4 rb = reinterpret_cast<const uint4*>(b)[v];
            T* ea = reinterpret_cast<T*>(&ra);
            const T* eb = reinterpret_cast<const T*>(&rb);
#pragma unroll
            for (int j = 0; j < 16 / (int)sizeof(T); ++j) {
                ea[j] = from_f<T>(apply_act(to_f(ea[j]) + to_f(eb[j]), act));
            }
            reinterpret_cast<uint4*>(y)[v] = ra;
        }
    } else {
        for (long long i = tid; i < n; i += stride) {
            y[i] = from_f<T>(apply_act(to_f(a[i]) + to_f(b[i]), act));
        }
    }
    STAMP_OUT(stamp);
}

#define ADD_ACT(sfx, T)                                                                        \
    extern "C" __global__ void __launch_bounds__(256) add_act_##sfx(                           \
        T* y, const T* a, const T* b, long long n, int act, int vec, u64* stamp) {             \
        add_act_body<T>(y, a, b, n, act, vec, stamp);                                          \
    }
COLOC_FOR_DTYPES(ADD_ACT)

// out[r, :] = table[ids[r], :] (+ pos_table[pos_offset + r % seq, :] when pos_table != 0).
// Ids outside [0, vocab) are clamped, as the CPU reference does.
template <typename T>
__device__ __forceinline__ void embedding_body(T* __restrict__ out, const T* __restrict__ table,
                                               const int* __restrict__ ids, const T* __restrict__ pos_table,
                                               int rows, int dim, int vocab, int seq, int pos_offset,
                                               u64* stamp) {
    STAMP_IN(stamp);
    const long long n = (long long)rows * dim;
    for (long long i = global_tid(); i < n; i += grid_stride()) {
        const int r = (int)(i / dim), d = (int)(i % dim);
        int id = ids[r];
        id = id < 0 ? 0 : (id >= vocab ? vocab - 1 : id);
        float v = to_f(table[(long long)id * dim + d]);
        if (pos_table != 0) v += to_f(pos_table[(long long)(pos_offset + r % seq) * dim + d]);
        out[i] = from_f<T>(v);
    }
    STAMP_OUT(stamp);
}

#define EMBEDDING(sfx, T)                                                                      \
    extern "C" __global__ void __launch_bounds__(256) embedding_##sfx(                         \
        T* out, const T* table, const int* ids, const T* pos_table, int rows, int dim, int vocab, \
        int seq, int pos_offset, u64* stamp) {                                                 \
        embedding_body<T>(out, table, ids, pos_table, rows, dim, vocab, seq, pos_offset, stamp); \
    }
COLOC_FOR_DTYPES(EMBEDDING)

// ViT: out[b, t, :] = (t == 0 ? cls : patches[b, t - 1, :]) + pos[t, :], t in [0, patches + 1).
template <typename T>
__device__ __forceinline__ void patch_tokens_body(T* __restrict__ out, const T* __restrict__ patches,
                                                  const T* __restrict__ cls, const T* __restrict__ pos,
                                                  int batch, int num_patches, int dim, u64* stamp) {
    STAMP_IN(stamp);
    const int tokens = num_patches + 1;
    const long long n = (long long)batch * tokens * dim;
    for (long long i = global_tid(); i < n; i += grid_stride()) {
        const int d = (int)(i % dim);
        const long long bt = i / dim;
        const int t = (int)(bt % tokens);
        const long long b = bt / tokens;
        float v = (t == 0) ? to_f(cls[d]) : to_f(patches[(b * num_patches + (t - 1)) * dim + d]);
        out[i] = from_f<T>(v + to_f(pos[(long long)t * dim + d]));
    }
    STAMP_OUT(stamp);
}

#define PATCH_TOKENS(sfx, T)                                                                   \
    extern "C" __global__ void __launch_bounds__(256) patch_tokens_##sfx(                      \
        T* out, const T* patches, const T* cls, const T* pos, int batch, int num_patches, int dim, \
        u64* stamp) {                                                                          \
        patch_tokens_body<T>(out, patches, cls, pos, batch, num_patches, dim, stamp);          \
    }
COLOC_FOR_DTYPES(PATCH_TOKENS)

// Decode step: copy the new token's K and V (from qkv laid out [B, 3, H, Dh]) into the caches
// [B, H, max_len, Dh] at position `pos`.
template <typename T>
__device__ __forceinline__ void kv_append_body(T* __restrict__ k_cache, T* __restrict__ v_cache,
                                               const T* __restrict__ qkv, int batch, int heads,
                                               int head_dim, int max_len, int pos, u64* stamp) {
    STAMP_IN(stamp);
    const long long per = (long long)heads * head_dim;
    const long long n = (long long)batch * per;
    for (long long i = global_tid(); i < n; i += grid_stride()) {
        const long long b = i / per;
        const long long hd = i % per;
        const long long h = hd / head_dim, d = hd % head_dim;
        const long long dst = ((b * heads + h) * max_len + pos) * head_dim + d;
        k_cache[dst] = qkv[(b * 3 + 1) * per + hd];
        v_cache[dst] = qkv[(b * 3 + 2) * per + hd];
    }
    STAMP_OUT(stamp);
}

#define KV_APPEND(sfx, T)                                                                      \
    extern "C" __global__ void __launch_bounds__(256) kv_append_##sfx(                         \
        T* k_cache, T* v_cache, const T* qkv, int batch, int heads, int head_dim, int max_len, \
        int pos, u64* stamp) {                                                                 \
        kv_append_body<T>(k_cache, v_cache, qkv, batch, heads, head_dim, max_len, pos, stamp); \
    }
COLOC_FOR_DTYPES(KV_APPEND)

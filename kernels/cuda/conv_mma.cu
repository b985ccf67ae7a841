// Convolution as an implicit GEMM on tensor cores: bf16 NHWC, compute capability 8.0 or newer.
//
// y[m, n] = act(bias[n] + sum_k A[m, k] * W[n, k]), where m is an output pixel (b, oy, ox), n an
// output channel and k = (ky * KW + kx) * C + c runs over the window, in the order of the
// weights [N, KH*KW*C]. A is never written out (that is im2col's column buffer): each K slice
// of CONV_BK = 32 channels lies inside one (ky, kx) because C is a multiple of 32, so a row of
// the slice is 64 contiguous bytes of one input pixel, or zeros outside the image, copied with
// cp.async straight into shared memory. A block of eight warps computes a 128 x 128 tile of y
// (warps 2 along m by 4 along n, 64 x 32 each) with mma.sync m16n8k16 from ldmatrix fragments,
// f32 accumulators, two shared-memory stages so that the next slice's copy overlaps this
// slice's math, and bias + activation applied before the bf16 store.
// Grid (ceil(M / 128), ceil(N / 128)); block 256 threads. The host checks C % 32 == 0,
// N % 2 == 0 and 16-byte alignment of x and w.

#define CONV_BM 128
#define CONV_BN 128
#define CONV_BK 32
#define CONV_LD (CONV_BK + 8)  // padded rows: ldmatrix's eight 16-byte rows hit distinct banks
#define CONV_THREADS 256

struct ConvTiles {
    bf16 a[2][CONV_BM][CONV_LD];
    bf16 b[2][CONV_BN][CONV_LD];
};

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 2)
    conv_implicit_bf16(bf16* __restrict__ y, const bf16* __restrict__ x, const bf16* __restrict__ w,
                       const bf16* __restrict__ bias, int n_img, int h, int wd, int c, int n_out, int kh,
                       int kw, int stride, int pad, int oh, int ow, int act, u64* stamp) {
    __shared__ __align__(16) ConvTiles tiles;
    STAMP_IN(stamp);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, tq = lane & 3;
    const int wm = warp & 1, wn = warp >> 1;  // this warp's 64 x 32 piece of the tile
    const int m_total = n_img * oh * ow;
    const int k_total = kh * kw * c;
    const int m0 = blockIdx.x * CONV_BM, n0 = blockIdx.y * CONV_BN;

    // Each thread copies one 16-byte piece of two rows of A and two rows of B per slice: rows
    // tid / 4 and tid / 4 + 64, piece tid % 4. Where its A rows start in the image, once.
    const int piece = tid & 3;
    int a_img[2], a_iy[2], a_ix[2];
    bool a_row_ok[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int m = m0 + (tid >> 2) + r * 64;
        a_row_ok[r] = m < m_total;
        const int mm = a_row_ok[r] ? m : 0;
        const int ox = mm % ow, rest = mm / ow;
        a_ix[r] = ox * stride - pad;
        a_iy[r] = (rest % oh) * stride - pad;
        a_img[r] = rest / oh;
    }
    const int k_tiles = k_total / CONV_BK;

    auto load_slice = [&](int kt, int st) {
        const int k0 = kt * CONV_BK;
        const int win = k0 / c, c0 = k0 - win * c;  // the slice's (ky, kx) and first channel
        const int ky = win / kw, kx = win - ky * kw;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int row = (tid >> 2) + r * 64;
            const int iy = a_iy[r] + ky, ix = a_ix[r] + kx;
            const bool in = a_row_ok[r] && iy >= 0 && iy < h && ix >= 0 && ix < wd;
            const bf16* src = in ? x + (((long long)a_img[r] * h + iy) * wd + ix) * c + c0 + piece * 8 : x;
            cp_async16(&tiles.a[st][row][piece * 8], src, in ? 16 : 0);
            const int n = n0 + row;
            const bool n_ok = n < n_out;
            const bf16* wsrc = n_ok ? w + (long long)n * k_total + k0 + piece * 8 : w;
            cp_async16(&tiles.b[st][row][piece * 8], wsrc, n_ok ? 16 : 0);
        }
    };

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

    load_slice(0, 0);
    cp_async_commit();
    for (int kt = 0; kt < k_tiles; ++kt) {
        const int st = kt & 1;
        if (kt + 1 < k_tiles) {
            // The other stage was last read in iteration kt - 1, which ended in a barrier.
            load_slice(kt + 1, st ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < CONV_BK / 16; ++ks) {
            unsigned af[4][4], bfr[4][2];
#pragma unroll
            for (int i = 0; i < 4; ++i)
                ldmatrix_x4(af[i], &tiles.a[st][wm * 64 + i * 16 + (lane & 15)][ks * 16 + (lane >> 4) * 8]);
#pragma unroll
            for (int j = 0; j < 4; j += 2) {
                unsigned r[4];
                ldmatrix_x4(r, &tiles.b[st][wn * 32 + j * 8 + (lane & 7) + ((lane >> 4) << 3)]
                                           [ks * 16 + ((lane >> 3) & 1) * 8]);
                bfr[j][0] = r[0];
                bfr[j][1] = r[1];
                bfr[j + 1][0] = r[2];
                bfr[j + 1][1] = r[3];
            }
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) mma_bf16_16816(acc[i][j], af[i], bfr[j][0], bfr[j][1]);
        }
        __syncthreads();  // this stage is refilled next
    }

    // Epilogue: bias and activation in f32, two channels per 4-byte store.
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int n = n0 + wn * 32 + j * 8 + tq * 2;
        if (n >= n_out) continue;
        const float b0 = bias ? to_f(bias[n]) : 0.0f, b1 = bias ? to_f(bias[n + 1]) : 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int m = m0 + wm * 64 + i * 16 + g + half * 8;
                if (m < m_total) {
                    const float v0 = apply_act(acc[i][j][2 * half] + b0, act);
                    const float v1 = apply_act(acc[i][j][2 * half + 1] + b1, act);
                    *reinterpret_cast<unsigned*>(y + (long long)m * n_out + n) = pack_bf16x2(v0, v1);
                }
            }
    }
    STAMP_OUT(stamp);
}

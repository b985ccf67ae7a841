// Convolution as an implicit GEMM on tensor cores: bf16 NHWC, compute capability 8.0 or newer.
//
// y[m, n] = act(bias[n] + sum_k A[m, k] * W[n, k]), where m is an output pixel (b, oy, ox), n an
// output channel and k = (ky * KW + kx) * C + c runs over the window, in the order of the
// weights [N, KH*KW*C]. A is never written out (that is im2col's column buffer): each K slice
// of CONV_BK = 32 channels lies inside one (ky, kx) because C is a multiple of 32, so a row of
// the slice is 64 contiguous bytes of one input pixel, or zeros outside the image, copied with
// cp.async straight into shared memory. A block of four warps computes a 128 x 64 tile of y
// (warps 2 along m by 2 along n, 64 x 32 each) with mma.sync m16n8k16 from ldmatrix fragments
// and f32 accumulators. Three shared-memory stages (45 KiB, inside the static limit) keep two
// slices in flight while one is multiplied, with one barrier per slice; bias and activation
// are applied before the bf16 store.
// Grid (ceil(M / 128), ceil(N / 64)); block 128 threads. The host checks C % 32 == 0,
// N % 2 == 0 and 16-byte alignment of x and w.

#define CONV_BM 128
#define CONV_BN 64
#define CONV_BK 32
#define CONV_LD (CONV_BK + 8)  // padded rows: ldmatrix's eight 16-byte rows hit distinct banks
#define CONV_THREADS 128
#define CONV_STAGES 3
#define CONV_A_ROWS (CONV_BM * 4 / CONV_THREADS)  // A rows each thread copies a piece of
#define CONV_B_ROWS (CONV_BN * 4 / CONV_THREADS)

struct ConvTiles {
    bf16 a[CONV_STAGES][CONV_BM][CONV_LD];
    bf16 b[CONV_STAGES][CONV_BN][CONV_LD];
};

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 3)
    conv_implicit_bf16(bf16* __restrict__ y, const bf16* __restrict__ x, const bf16* __restrict__ w,
                       const bf16* __restrict__ bias, int n_img, int h, int wd, int c, int kh, int kw,
                       int stride, int pad, int oh, int ow, int act, int n_out, u64* stamp) {
    __shared__ __align__(16) ConvTiles tiles;
    STAMP_IN(stamp);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, tq = lane & 3;
    const int wm = warp & 1, wn = warp >> 1;  // this warp's 64 x 32 piece of the tile
    const int m_total = n_img * oh * ow;
    const int k_total = kh * kw * c;
    const int m0 = blockIdx.x * CONV_BM, n0 = blockIdx.y * CONV_BN;

    // Each thread copies piece tid % 4 (16 bytes) of rows tid / 4 + 32 r. Where its A rows
    // start in the image, worked out once.
    const int piece = tid & 3, row0 = tid >> 2;
    int a_img[CONV_A_ROWS], a_iy[CONV_A_ROWS], a_ix[CONV_A_ROWS];
#pragma unroll
    for (int r = 0; r < CONV_A_ROWS; ++r) {
        const int m = m0 + row0 + r * 32;
        const int mm = m < m_total ? m : 0;
        const int ox = mm % ow, rest = mm / ow;
        a_ix[r] = ox * stride - pad;
        // A row past the last pixel gets an offset no window can bring inside the image.
        a_iy[r] = m < m_total ? (rest % oh) * stride - pad : -(1 << 29);
        a_img[r] = rest / oh;
    }
    const int k_tiles = k_total / CONV_BK;

    auto load_slice = [&](int kt, int st) {
        const int k0 = kt * CONV_BK;
        const int win = k0 / c, c0 = k0 - win * c;  // the slice's (ky, kx) and first channel
        const int ky = win / kw, kx = win - ky * kw;
#pragma unroll
        for (int r = 0; r < CONV_A_ROWS; ++r) {
            const int iy = a_iy[r] + ky, ix = a_ix[r] + kx;
            const bool in = iy >= 0 && iy < h && ix >= 0 && ix < wd;
            const bf16* src = in ? x + (((long long)a_img[r] * h + iy) * wd + ix) * c + c0 + piece * 8 : x;
            cp_async16(&tiles.a[st][row0 + r * 32][piece * 8], src, in ? 16 : 0);
        }
#pragma unroll
        for (int r = 0; r < CONV_B_ROWS; ++r) {
            const int n = n0 + row0 + r * 32;
            const bool ok = n < n_out;
            const bf16* src = ok ? w + (long long)n * k_total + k0 + piece * 8 : w;
            cp_async16(&tiles.b[st][row0 + r * 32][piece * 8], src, ok ? 16 : 0);
        }
    };

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

    // Every iteration commits one group (empty past the last slice), so that waiting for all
    // but the newest STAGES - 2 groups always means: slice kt has landed.
#pragma unroll
    for (int s = 0; s < CONV_STAGES - 1; ++s) {
        if (s < k_tiles) load_slice(s, s);
        cp_async_commit();
    }
    for (int kt = 0; kt < k_tiles; ++kt) {
        cp_async_wait<CONV_STAGES - 2>();
        // Slice kt is visible to all, and everyone is done with the stage refilled below
        // (read in iteration kt - 1).
        __syncthreads();
        const int next = kt + CONV_STAGES - 1;
        if (next < k_tiles) load_slice(next, next % CONV_STAGES);
        cp_async_commit();
        const int st = kt % CONV_STAGES;
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
    }
    cp_async_wait<0>();

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

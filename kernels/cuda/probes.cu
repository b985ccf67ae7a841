// Measurement plumbing: stamp points around library calls, the stream blocker that lets a
// whole batch of timed launches queue up before the GPU starts on it, the SM census that
// shows which SMs a partition really runs on, the %globaltimer resolution probe, and the
// seeded on-device fills for inputs.

extern "C" __global__ void stamp_point(u64* stamp, int end) {
    if (coloc_block_leader()) {
        if (end) atomicMax(&stamp[1], coloc_now());
        else atomicMax(&stamp[0], ~coloc_now());
    }
}

// Spins until the host sets *flag (host-mapped pinned memory) or the timeout passes.
extern "C" __global__ void block_until(const volatile int* flag, u64 timeout_ns, int* timed_out) {
    if (coloc_block_leader()) {
        const u64 t0 = coloc_now();
        while (*flag == 0) {
            if (coloc_now() - t0 > timeout_ns) {
                *timed_out = 1;
                break;
            }
            __nanosleep(256);
        }
    }
}

// Answers the host's pings for the host/GPU clock calibration. For round r = 1..rounds it
// waits for the host to write r into *ping (host-mapped memory), reads %globaltimer into
// stamps[r - 1] and echoes r into *pong. A round trip then costs two PCIe crossings instead of
// a launch and a synchronisation, whose unequal halves would bias the midpoint. Gives up when
// no ping comes for timeout_ns.
extern "C" __global__ void clock_ping(const volatile int* ping, volatile int* pong, volatile u64* stamps,
                                      int rounds, u64 timeout_ns) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    for (int r = 1; r <= rounds; ++r) {
        const u64 t0 = coloc_now();
        while (*ping != r) {
            if (coloc_now() - t0 > timeout_ns) return;
        }
        stamps[r - 1] = coloc_now();
        __threadfence_system();
        *pong = r;
        __threadfence_system();
    }
}

// Each block counts itself on the SM it runs on, then holds that SM for spin_ns so that the
// blocks of one launch spread over every SM the context may use.
extern "C" __global__ void sm_census(unsigned* counts, u64 spin_ns, u64* stamp) {
    STAMP_IN(stamp);
    if (coloc_block_leader()) {
        atomicAdd(&counts[coloc_smid()], 1u);
        const u64 t0 = coloc_now();
        while (coloc_now() - t0 < spin_ns) __nanosleep(100);
    }
    STAMP_OUT(stamp);
}

// One thread reads %globaltimer `reads` times: out = [smallest non-zero step, distinct values,
// span in ns].
extern "C" __global__ void timer_resolution(u64* out, int reads) {
    if (coloc_block_leader()) {
        u64 first = coloc_now(), prev = first, min_step = ~0ull, distinct = 1;
        for (int r = 0; r < reads; ++r) {
            const u64 t = coloc_now();
            if (t != prev) {
                const u64 step = t - prev;
                min_step = step < min_step ? step : min_step;
                ++distinct;
                prev = t;
            }
        }
        out[0] = min_step;
        out[1] = distinct;
        out[2] = prev - first;
    }
}

__device__ __forceinline__ u64 splitmix64(u64 x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

template <typename T>
__device__ __forceinline__ void fill_uniform_body(T* p, long long n, u64 seed, float lo, float hi) {
    for (long long i = global_tid(); i < n; i += grid_stride()) {
        const float u = (float)(splitmix64(seed ^ (0xd1b54a32d192ed03ull * (u64)(i + 1))) >> 40) * (1.0f / 16777216.0f);
        p[i] = from_f<T>(lo + (hi - lo) * u);
    }
}

#define FILL_UNIFORM(sfx, T)                                                                   \
    extern "C" __global__ void fill_uniform_##sfx(T* p, long long n, u64 seed, float lo, float hi) { \
        fill_uniform_body<T>(p, n, seed, lo, hi);                                              \
    }
COLOC_FOR_DTYPES(FILL_UNIFORM)

extern "C" __global__ void fill_ids(int* p, long long n, u64 seed, int vocab) {
    for (long long i = global_tid(); i < n; i += grid_stride()) {
        p[i] = (int)(splitmix64(seed ^ (0xd1b54a32d192ed03ull * (u64)(i + 1))) % (u64)vocab);
    }
}

// next[i] = (a * i + c) mod n, n a power of two, a = 1 mod 4, c odd: a single cycle through
// all n entries (Hull-Dobell), with pseudo-random strides.
extern "C" __global__ void fill_chase(unsigned* next, long long n, unsigned long long a, unsigned long long c) {
    for (long long i = global_tid(); i < n; i += grid_stride()) {
        next[i] = (unsigned)((a * (unsigned long long)i + c) & (unsigned long long)(n - 1));
    }
}

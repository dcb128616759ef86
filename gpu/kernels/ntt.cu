// Goldilocks NTT kernels of pjp-gpu.
//
// Compiled at run time by NVRTC (src/kernel.rs embeds this file) and, for tests,
// by g++ under the host shim in gpu/shim/. Keep it to the subset both accept:
// no headers, no shared memory, no intrinsics beyond the ones the shim provides
// (__umul64hi, __brev), one thread per independent piece of work.
//
// Field: p = 2^64 - 2^32 + 1; elements are canonical u64 (< p).
// Launch plan and buffers: see src/plan.rs.

typedef unsigned long long u64;
typedef unsigned int u32;

#define GL_P 0xffffffff00000001ULL
#define GL_EPSILON 0xffffffffULL

__device__ __forceinline__ u64 gl_add(u64 a, u64 b) {
    u64 sum = a + b;
    bool overflow = sum < a;
    u64 less_p = sum - GL_P;
    bool below_p = sum < GL_P;
    // On overflow the true sum is sum + 2^64 = sum + EPSILON (mod p): that is
    // the wrapping sum - P.
    return (overflow || !below_p) ? less_p : sum;
}

__device__ __forceinline__ u64 gl_sub(u64 a, u64 b) {
    u64 diff = a - b;
    // On borrow diff = a - b + 2^64; a - b + p = diff - EPSILON (mod 2^64).
    return (a < b) ? diff - GL_EPSILON : diff;
}

__device__ __forceinline__ u64 gl_mul(u64 a, u64 b) {
    u64 lo = a * b;
    u64 hi = __umul64hi(a, b);
    u64 hi_hi = hi >> 32;
    u64 hi_lo = hi & GL_EPSILON;
    // 2^96 = -1 (mod p): subtract hi_hi.
    u64 t0 = lo - hi_hi;
    if (lo < hi_hi) {
        t0 -= GL_EPSILON;
    }
    // 2^64 = 2^32 - 1 (mod p): add hi_lo * (2^32 - 1), which fits in 64 bits.
    u64 t1 = hi_lo * GL_EPSILON;
    u64 t2 = t0 + t1;
    if (t2 < t1) {
        t2 += GL_EPSILON;
    }
    if (t2 >= GL_P) {
        t2 -= GL_P;
    }
    return t2;
}

__device__ __forceinline__ u64 global_thread_id() {
    return (u64)blockIdx.x * (u64)blockDim.x + (u64)threadIdx.x;
}

// src[t] -> dst[poly | rev(i)], t = poly | i, i < n = 2^log_n.
extern "C" __global__ void ntt_bit_reverse(const u64* __restrict__ src, u64* __restrict__ dst,
                                           u32 log_n, u64 total) {
    u64 t = global_thread_id();
    if (t >= total) {
        return;
    }
    u64 mask = (1ULL << log_n) - 1;
    u32 i = (u32)(t & mask);
    u64 j = (log_n == 0) ? 0 : (u64)(__brev(i) >> (32 - log_n));
    dst[(t & ~mask) | j] = src[t];
}

// Radix-2 DIT stages stage .. stage+R-1 over one group of 2^R elements: the
// elements of one polynomial whose indexes agree outside bits stage..stage+R-1.
// Stage s (half-size m = 2^s) maps (a, b) at (i, i + m), i mod 2m < m, to
// (a + w b, a - w b) with w = twiddles[m + (i mod m)] = omega_{2m}^(i mod m).
template <u32 R>
__device__ __forceinline__ void butterfly_group(u64* __restrict__ data,
                                                const u64* __restrict__ twiddles, u32 log_n,
                                                u32 stage, u64 t) {
    const u32 groups_log = log_n - R;
    const u64 poly = t >> groups_log;
    const u64 g = t & ((1ULL << groups_log) - 1);
    const u64 low = g & ((1ULL << stage) - 1);
    const u64 high = g >> stage;
    const u64 base = (poly << log_n) | (high << (stage + R)) | low;
    const u64 stride = 1ULL << stage;

    u64 v[1u << R];
#pragma unroll
    for (u32 k = 0; k < (1u << R); ++k) {
        v[k] = data[base + k * stride];
    }
#pragma unroll
    for (u32 q = 0; q < R; ++q) {
        const u64 m = 1ULL << (stage + q);
        const u32 h = 1u << q;
#pragma unroll
        for (u32 k = 0; k < (1u << R); ++k) {
            if (k & h) {
                continue;
            }
            const u64 e = low + (u64)(k & (h - 1)) * stride;
            const u64 w = twiddles[m + e];
            const u64 a = v[k];
            const u64 b = gl_mul(v[k + h], w);
            v[k] = gl_add(a, b);
            v[k + h] = gl_sub(a, b);
        }
    }
#pragma unroll
    for (u32 k = 0; k < (1u << R); ++k) {
        data[base + k * stride] = v[k];
    }
}

extern "C" __global__ void ntt_butterflies(u64* __restrict__ data,
                                           const u64* __restrict__ twiddles, u32 log_n,
                                           u32 stage, u32 radix_log, u64 threads) {
    u64 t = global_thread_id();
    if (t >= threads) {
        return;
    }
    switch (radix_log) {
        case 1:
            butterfly_group<1>(data, twiddles, log_n, stage, t);
            break;
        case 2:
            butterfly_group<2>(data, twiddles, log_n, stage, t);
            break;
        case 3:
            butterfly_group<3>(data, twiddles, log_n, stage, t);
            break;
        default:
            break;
    }
}

extern "C" __global__ void ntt_scale(u64* __restrict__ data, u64 factor, u64 total) {
    u64 t = global_thread_id();
    if (t >= total) {
        return;
    }
    data[t] = gl_mul(data[t], factor);
}

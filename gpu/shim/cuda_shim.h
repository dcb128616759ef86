// Host stand-ins for the CUDA built-ins kernels/ntt.cu uses, so that g++ can
// compile the kernel source unchanged and the test can replay the CUDA
// backend's launch plan on the CPU (see ntt_shim.cpp and tests/kernel_shim.rs).
//
// A launch runs every (block, thread) of the grid one after another. The NTT
// kernels use no shared memory and no barriers, and no two threads of a launch
// touch the same element, so sequential execution computes what the GPU does.
#pragma once

#include <cstdint>

struct ShimDim3 {
    unsigned int x;
    unsigned int y;
    unsigned int z;
};

inline ShimDim3 threadIdx = {0, 0, 0};
inline ShimDim3 blockIdx = {0, 0, 0};
inline ShimDim3 blockDim = {1, 1, 1};
inline ShimDim3 gridDim = {1, 1, 1};

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

static_assert(sizeof(unsigned long long) == 8, "u64 must be 64 bits");
static_assert(sizeof(unsigned int) == 4, "u32 must be 32 bits");

// High 64 bits of the 128-bit product.
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * (unsigned __int128)b) >> 64);
}

// Reverses the 32 bits of x.
inline unsigned int __brev(unsigned int x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
    return (x >> 16) | (x << 16);
}

// Runs `kernel` for every thread of a 1-D grid, as <<<grid, block>>> would.
template <typename Kernel>
void shim_launch(unsigned int grid, unsigned int block, Kernel kernel) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned int b = 0; b < grid; ++b) {
        blockIdx = {b, 0, 0};
        for (unsigned int t = 0; t < block; ++t) {
            threadIdx = {t, 0, 0};
            kernel();
        }
    }
}

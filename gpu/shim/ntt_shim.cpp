// Replays a pjp-gpu launch plan (LaunchPlan::to_text) against kernels/ntt.cu
// compiled for the host with cuda_shim.h.
//
//   ntt_shim PLAN INPUT TWIDDLES OUTPUT
//
// INPUT holds the batch's elements, TWIDDLES the n-entry twiddle table (both
// little-endian u64), as the CUDA backend uploads them; OUTPUT receives the work
// buffer after the last launch. Buffers are allocated at their exact sizes so
// that AddressSanitizer flags any out-of-bounds access of a kernel.
#include "cuda_shim.h"

#include "ntt.cu"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

[[noreturn]] void fail(const std::string& message) {
    std::cerr << "ntt_shim: " << message << std::endl;
    std::exit(2);
}

std::vector<u64> read_u64s(const char* path, u64 expected) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        fail(std::string("cannot open ") + path);
    }
    std::vector<u64> values(expected);
    in.read(reinterpret_cast<char*>(values.data()), (std::streamsize)(expected * sizeof(u64)));
    if ((u64)in.gcount() != expected * sizeof(u64) || in.peek() != EOF) {
        fail(std::string(path) + " does not hold exactly " + std::to_string(expected) + " u64s");
    }
    return values;
}

void check_dims(unsigned long long grid, unsigned long long block, u64 threads) {
    if (block == 0 || block > 1024) {
        fail("block dimension out of CUDA's range: " + std::to_string(block));
    }
    if (grid == 0 || grid > 2147483647ULL) {
        fail("grid dimension out of CUDA's range: " + std::to_string(grid));
    }
    if (grid * block < threads) {
        fail("grid " + std::to_string(grid) + " x " + std::to_string(block) +
             " does not cover " + std::to_string(threads) + " threads");
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        fail("usage: ntt_shim PLAN INPUT TWIDDLES OUTPUT");
    }
    std::ifstream plan(argv[1]);
    if (!plan) {
        fail(std::string("cannot open plan ") + argv[1]);
    }
    std::string magic, direction;
    int version = 0;
    u32 log_n = 0;
    u64 batch = 0, elements = 0;
    if (!(plan >> magic >> version >> log_n >> batch >> direction >> elements) ||
        magic != "pjp-ntt-plan" || version != 1 || log_n > 32) {
        fail("bad plan header");
    }
    if ((batch << log_n) != elements) {
        fail("plan header: elements != batch << log_n");
    }

    std::vector<u64> input = read_u64s(argv[2], elements);
    std::vector<u64> twiddles = read_u64s(argv[3], 1ULL << log_n);
    // Poison: an element no launch writes shows up in the comparison.
    std::vector<u64> work(elements, 0xdeadbeefdeadbeefULL);

    std::string entry;
    unsigned long long grid = 0, block = 0;
    unsigned launches = 0;
    while (plan >> entry >> grid >> block) {
        ++launches;
        if (entry == "ntt_bit_reverse") {
            u32 k_log_n = 0;
            u64 total = 0;
            if (!(plan >> k_log_n >> total)) fail("bad ntt_bit_reverse line");
            check_dims(grid, block, total);
            shim_launch((unsigned)grid, (unsigned)block, [&] {
                ntt_bit_reverse(input.data(), work.data(), k_log_n, total);
            });
        } else if (entry == "ntt_butterflies") {
            u32 k_log_n = 0, stage = 0, radix_log = 0;
            u64 threads = 0;
            if (!(plan >> k_log_n >> stage >> radix_log >> threads)) fail("bad ntt_butterflies line");
            check_dims(grid, block, threads);
            shim_launch((unsigned)grid, (unsigned)block, [&] {
                ntt_butterflies(work.data(), twiddles.data(), k_log_n, stage, radix_log, threads);
            });
        } else if (entry == "ntt_scale") {
            u64 factor = 0, total = 0;
            if (!(plan >> factor >> total)) fail("bad ntt_scale line");
            check_dims(grid, block, total);
            shim_launch((unsigned)grid, (unsigned)block, [&] {
                ntt_scale(work.data(), factor, total);
            });
        } else {
            fail("unknown kernel " + entry);
        }
    }
    if (!plan.eof()) {
        fail("trailing garbage in plan");
    }

    std::ofstream out(argv[4], std::ios::binary);
    out.write(reinterpret_cast<const char*>(work.data()), (std::streamsize)(elements * sizeof(u64)));
    if (!out) {
        fail(std::string("cannot write ") + argv[4]);
    }
    std::cerr << "ntt_shim: " << launches << " launches, " << elements << " elements, "
              << direction << std::endl;
    return 0;
}

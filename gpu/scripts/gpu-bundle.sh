#!/usr/bin/env bash
# Builds a self-contained bundle of pjp-gpu's GPU tests and a small benchmark,
# to copy to a GPU machine that has no Rust toolchain:
#
#   gpu/scripts/gpu-bundle.sh [OUT_DIR]       (default: target/gpu-bundle)
#   scp -r target/gpu-bundle gpu-host: && ssh gpu-host gpu-bundle/run.sh
#
# The bundle holds release builds of the test binaries (gpu, nvrtc, cpu_ntt,
# executor, field), the `ntt_table` example (size, batch, CPU ms, GPU ms, GB/s),
# the kernel source for reference, and NVRTC from the PyPI wheel when
# install-nvrtc.sh has installed it here (skip it with --no-nvrtc). run.sh uses
# the bundled NVRTC only when the machine has none of its own. The binaries need
# a glibc at least as new as this machine's; libcuda comes from the GPU
# machine's driver.
#
# run.sh sets REQUIRE_GPU=1 unless told otherwise, so a GPU machine where CUDA
# does not work fails loudly; `REQUIRE_GPU=0 ./run.sh` shows the skips instead.
set -euo pipefail

with_nvrtc=1
out=""
for arg in "$@"; do
    case "${arg}" in
        --no-nvrtc) with_nvrtc=0 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) out="${arg}" ;;
    esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
out="${out:-${root}/target/gpu-bundle}"
log() { printf 'gpu-bundle: %s\n' "$*" >&2; }

cd "${root}"
tests=(gpu nvrtc cpu_ntt executor field)
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "${t}"); done

log "building release test binaries and the ntt_table example"
cargo build --release -p pjp-gpu --example ntt_table >&2
messages="$(cargo test --release -p pjp-gpu "${test_args[@]}" --no-run --message-format=json 2>/dev/null)"

rm -rf "${out}"
mkdir -p "${out}/bin" "${out}/kernels"
for t in "${tests[@]}"; do
    exe="$(printf '%s\n' "${messages}" |
        grep -o "\"executable\":\"[^\"]*/deps/${t}-[0-9a-f]*\"" | tail -n 1 |
        sed 's/^"executable":"//; s/"$//')"
    [[ -n "${exe}" && -x "${exe}" ]] || { log "no test binary for ${t}"; exit 1; }
    cp "${exe}" "${out}/bin/test-${t}"
done
cp target/release/examples/ntt_table "${out}/bin/ntt_table"
if command -v strip >/dev/null; then
    strip --strip-debug "${out}"/bin/*
fi
cp gpu/kernels/ntt.cu "${out}/kernels/"

if [[ "${with_nvrtc}" == 1 ]]; then
    cache="${PJP_NVRTC_CACHE:-${HOME}/.cache/pjp-nvrtc}"
    lib="$(find "${cache}" -name 'libnvrtc.so.[0-9]*' ! -name '*builtins*' -print -quit 2>/dev/null || true)"
    if [[ -n "${lib}" ]]; then
        mkdir -p "${out}/lib"
        cp -L "${lib}" "$(dirname "${lib}")"/libnvrtc-builtins.so.* "${out}/lib/"
        log "bundled NVRTC from $(dirname "${lib}")"
    else
        log "no NVRTC in ${cache} (run gpu/scripts/install-nvrtc.sh first); bundling none"
    fi
fi

cat > "${out}/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs pjp-gpu's GPU tests and NTT timing table. Env: REQUIRE_GPU (default 1),
# PJP_BUNDLE_NVRTC=1 to use the bundled NVRTC even where the system has one.
set -uo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export REQUIRE_GPU="${REQUIRE_GPU:-1}"
if [[ -d "${dir}/lib" ]]; then
    if [[ "${PJP_BUNDLE_NVRTC:-0}" == 1 ]] || ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
        export LD_LIBRARY_PATH="${dir}/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
        echo "using the bundled NVRTC (${dir}/lib)"
    fi
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
status=0
for t in "${dir}"/bin/test-*; do
    echo "== $(basename "${t}") (REQUIRE_GPU=${REQUIRE_GPU})"
    "${t}" --test-threads=1 --nocapture || status=1
done
echo "== ntt_table"
"${dir}/bin/ntt_table" "$@" || status=1
echo "== done: $([[ ${status} == 0 ]] && echo OK || echo FAILED)"
exit "${status}"
RUN
chmod +x "${out}/run.sh"
cat > "${out}/README.txt" <<'README'
pjp-gpu GPU bundle: ./run.sh runs the CUDA tests (GPU result == CPU reference
for sizes 2^1..2^22 and batches, concurrent streams, the executor in the runner),
the NVRTC compile test, the CPU/field tests, then prints NTT timings:
size, batch, CPU ms, GPU ms, GB/s (extra arguments go to ntt_table, e.g.
--max-log 24 --reps 10). REQUIRE_GPU=1 (the default here) turns "no usable GPU"
into a failure. Built by gpu/scripts/gpu-bundle.sh.
README
log "bundle ready: ${out} ($(du -sh "${out}" | cut -f1))"
printf '%s\n' "${out}"

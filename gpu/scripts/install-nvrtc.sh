#!/usr/bin/env bash
# Installs NVRTC (libnvrtc.so.13 and its builtins) from the `nvidia-cuda-nvrtc`
# wheel on PyPI into a cache directory, and prints the directory that holds the
# shared library, so that CI can
#
#   export LD_LIBRARY_PATH="$(gpu/scripts/install-nvrtc.sh):${LD_LIBRARY_PATH:-}"
#
# NVRTC needs no GPU: with it, gpu/tests/nvrtc.rs compiles the NTT kernels for
# real. Idempotent: an existing install is reused (nothing is downloaded).
#
# Usage: install-nvrtc.sh [CACHE_DIR]        (default: $HOME/.cache/pjp-nvrtc)
# Env:   NVRTC_WHEEL          PyPI package   (default: nvidia-cuda-nvrtc; for a
#                                             driver older than CUDA 13 use
#                                             nvidia-cuda-nvrtc-cu12 with a 12.x version
#                                             the driver supports: NVRTC must not be
#                                             newer than the driver)
#        NVRTC_WHEEL_VERSION  wheel version  (default: 13.0.88, CUDA 13.0, which
#                                             matches cudarc's `cuda-13000` and runs
#                                             with any driver supporting CUDA ≥ 13.0)
#        PYTHON               interpreter    (default: python3)
#
# Only the directory goes to stdout; progress goes to stderr.
set -euo pipefail

cache_dir="${1:-${HOME}/.cache/pjp-nvrtc}"
package="${NVRTC_WHEEL:-nvidia-cuda-nvrtc}"
version="${NVRTC_WHEEL_VERSION:-13.0.88}"
python="${PYTHON:-python3}"
target="${cache_dir}/${package}-${version}"

log() { printf 'install-nvrtc: %s\n' "$*" >&2; }

find_lib_dir() {
    local lib
    lib="$(find "$1" -name 'libnvrtc.so.*' ! -name '*builtins*' ! -name '*.alt.*' -print -quit 2>/dev/null || true)"
    [[ -n "${lib}" ]] && dirname "${lib}"
}

finish() {
    local dir="$1" lib
    # cudarc also tries the unversioned name first; provide it for other tools.
    lib="$(find "${dir}" -maxdepth 1 -name 'libnvrtc.so.[0-9]*' ! -name '*builtins*' -print -quit)"
    if [[ -n "${lib}" && ! -e "${dir}/libnvrtc.so" ]]; then
        ln -s "$(basename "${lib}")" "${dir}/libnvrtc.so"
    fi
    printf '%s\n' "${dir}"
}

if dir="$(find_lib_dir "${target}")"; then
    log "reusing ${dir}"
    finish "${dir}"
    exit 0
fi

mkdir -p "${cache_dir}"
staging="$(mktemp -d "${cache_dir}/.staging.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT

if "${python}" -m pip --version >/dev/null 2>&1; then
    log "pip-installing ${package}==${version} into ${target}"
    "${python}" -m pip install --quiet --no-deps --disable-pip-version-check \
        --no-warn-script-location --target "${staging}/site" \
        "${package}==${version}" >&2
else
    # No pip: take the manylinux x86_64 wheel from PyPI's simple index, check
    # its sha256 and unzip it.
    log "no pip; downloading ${package} ${version} from PyPI"
    for tool in curl unzip sha256sum; do
        command -v "${tool}" >/dev/null || { log "need pip, or ${tool}"; exit 1; }
    done
    href="$(curl -fsSL "https://pypi.org/simple/${package}/" |
        grep -o "href=\"[^\"]*${package//-/_}-${version}-[^\"]*manylinux[^\"]*x86_64[^\"]*\.whl#sha256=[0-9a-f]*\"" |
        head -n 1 | sed 's/^href="//; s/"$//')"
    [[ -n "${href}" ]] || { log "no manylinux x86_64 wheel for ${version}"; exit 1; }
    curl -fsSL -o "${staging}/nvrtc.whl" "${href%%#*}"
    echo "${href##*#sha256=}  ${staging}/nvrtc.whl" | sha256sum --check --quiet >&2
    unzip -q "${staging}/nvrtc.whl" -d "${staging}/site"
fi

dir="$(find_lib_dir "${staging}/site")" || { log "the wheel holds no libnvrtc.so.*"; exit 1; }
rm -rf "${target}"
mv "${staging}/site" "${target}"
dir="${target}${dir#"${staging}/site"}"
log "installed ${dir}"
finish "${dir}"

#!/usr/bin/env bash
# The GPU check: llama-cpp-python built with CUDA, the GPU-marked tests, and bench rows for the
# demo's shape and the paper's smaller pair, on a machine with an NVIDIA GPU and no network.
# docs/bench.md ("GPU check") says what it prints and writes.
#
#   bash benchmarks/gpu_check.sh prepare   # here, with PyPI: .gpu/ (about 15 MB, git-ignored)
#   bash benchmarks/gpu_check.sh run       # there, from the repository root, .gpu/ beside it
#
# `prepare` puts into .gpu/ what the GPU machine cannot fetch: the llama-cpp-python sdist of
# the pinned version (trimmed to what builds it: no test models, docs or web UI) and the wheels
# whose versions the export pins and that machine's image lacks (transformers 4.57 with its
# tokenizers and huggingface-hub; diskcache for llama-cpp-python). `run` expects Python 3.12
# with torch, CMake, ninja, scikit-build-core and nvcc (CUDA 13) installed, 16 cores; it writes
# into $OUT (default /tmp/gpu-check) and takes about 7 minutes on one H100 (the build 3-4).
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_VERSION=0.3.36
GPU=.gpu
OUT=${OUT:-/tmp/gpu-check}
SITE=${GPU_CHECK_SITE:-/tmp/gpu-check-site}
WHEELS="transformers==4.57.6 tokenizers==0.22.2 huggingface-hub==0.36.2 diskcache==5.6.3"

say() { echo "[gpu-check $(date +%H:%M:%S)] $*" >&2; }

prepare() {
    mkdir -p "$GPU/wheels"
    local sdist="$GPU/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz"
    local cached="${EDGE_ET_CACHE:-$HOME/.cache/edge-et}/sdist/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz"
    if [ -f "$cached" ]; then cp "$cached" "$sdist"
    else python3 -m pip download -q --no-deps --no-binary :all: -d "$GPU" "llama-cpp-python==$LLAMA_CPP_VERSION"
    fi
    local work; work=$(mktemp -d)
    tar -xzf "$sdist" -C "$work"
    local tree="$work/llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp"
    rm -rf "$tree"/models/*.gguf "$tree/docs" "$tree/tools/server/public" "$tree/tools/ui" \
        "$tree/benches" "$tree/media" "$work/llama_cpp_python-$LLAMA_CPP_VERSION/.git"
    tar -czf "$GPU/llama-cpp-python-src.tgz" -C "$work" "llama_cpp_python-$LLAMA_CPP_VERSION"
    rm -rf "$work" "$sdist"
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$GPU/wheels" $WHEELS
    du -sh "$GPU"
    say "prepared: carry .gpu to the GPU machine and run: bash benchmarks/gpu_check.sh run"
}

run() {
    local started; started=$(date +%s)
    mkdir -p "$OUT" "$SITE"
    # One log and at most 8 files in $OUT: what the device tool brings back.
    exec > >(tee -a "$OUT/gpu-check.log") 2>&1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$GPU"/wheels/*.whl
    export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1 EDGE_ET_CACHE=${EDGE_ET_CACHE:-/tmp/edge-et-cache}

    say "building llama-cpp-python $LLAMA_CPP_VERSION with CUDA (sm_90, 16 jobs)"
    local src; src=$(mktemp -d)
    tar -xzf "$GPU/llama-cpp-python-src.tgz" -C "$src"
    local tree="$src/llama_cpp_python-$LLAMA_CPP_VERSION"
    CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90" CMAKE_BUILD_PARALLEL_LEVEL=16 \
        python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" "$tree" \
        2>&1 | tail -n 20
    python3 -c "import llama_cpp; assert llama_cpp.llama_supports_gpu_offload(), 'CPU build'; \
print('llama-cpp-python', llama_cpp.__version__, 'GPU offload: yes')"
    # The export's converter comes from this same sdist (export/gguf/converter.py looks there).
    mkdir -p "$EDGE_ET_CACHE/sdist"
    tar -czf "$EDGE_ET_CACHE/sdist/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz" -C "$src" \
        "llama_cpp_python-$LLAMA_CPP_VERSION"
    rm -rf "$src"
    say "build done in $(( $(date +%s) - started )) s"

    say "the GPU-marked tests"
    python3 -m pytest -q -m gpu -p no:cacheprovider -o addopts="" --junitxml "$OUT/gpu-tests.xml" \
        tests/backends/test_gpu.py

    say "bench rows: demo-shape and paper-0.6b+1.7b, every layer on the GPU"
    python3 -m benchmarks.bench_configs --only demo-shape --only paper-0.6b+1.7b --gpu-layers -1 \
        --force --out "$OUT/bench"
    grep -h "^| " "$OUT/bench/bench_results.md" | head -n 12
    say "done in $(( $(date +%s) - started )) s; files in $OUT"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash benchmarks/gpu_check.sh prepare|run" >&2; exit 64 ;;
esac

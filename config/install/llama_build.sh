#!/usr/bin/env bash
# How llama-cpp-python is built: `make install GPU=auto|cuda|cpu` (see README "GPU").
#
#   config/install/llama_build.sh cmake-args MODE VENV   print the CMAKE_ARGS for MODE (the choice is printed on stderr)
#   config/install/llama_build.sh ensure MODE VENV       install llama-cpp-python, or rebuild it (only it), when the
#                                               installed build is not the one MODE resolves to; record the
#                                               choice in VENV/.gpu-build
#
# MODE: auto = CUDA when NVML reports a GPU and a CUDA toolkit (nvcc) is found, else the portable CPU build;
# cuda = CUDA or fail; cpu = portable CPU build; "" = the mode recorded by the last install (else auto).
# The installed build is read from the files (llama_cpp/lib/libggml-cuda.so), not trusted from the record.
set -euo pipefail

CPU_ARGS="-DGGML_NATIVE=OFF"
CUDA_ARCHS="${CUDA_ARCHITECTURES:-75-virtual;80-virtual;86-real;89-real}"

die() { echo "GPU build: $*" >&2; exit 2; }

nvml_gpu_count() {   # GPUs NVML reports (0 without the driver); needs nothing but python3 and the driver
  python3 - <<'EOF' 2>/dev/null || echo 0
import ctypes
try:
    nvml = ctypes.CDLL("libnvidia-ml.so.1")
except OSError:
    print(0); raise SystemExit
count = ctypes.c_uint(0)
ok = nvml.nvmlInit_v2() == 0 and nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0
print(count.value if ok else 0)
EOF
}

find_nvcc() {   # the real nvcc (not a wrapper script or symlink): its directory is the toolkit's bin/
  local c here
  for c in "${CUDACXX:-}" "$(command -v nvcc 2>/dev/null || true)" "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"; do
    if [ -n "$c" ] && [ -x "$c" ]; then
      here="$(cd /tmp && "$c" -dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -1)"
      if [ -n "$here" ] && [ -x "$here/nvcc" ]; then readlink -f "$here/nvcc"; return 0; fi
    fi
  done
  return 1
}

recorded() { [ -f "$1/.gpu-build" ] && sed -n "s/^$2=//p" "$1/.gpu-build" | head -1 || true; }

# resolve MODE VENV -> sets BUILD (cpu|cuda), REASON, NVCC
resolve() {
  local mode="$1" venv="$2" gpus
  [ -n "$mode" ] || mode="$(recorded "$venv" requested)"
  [ -n "$mode" ] || mode=auto
  REQUESTED="$mode"; NVCC=""
  case "$mode" in
    cpu) BUILD=cpu; REASON="GPU=cpu requested" ;;
    cuda)
      NVCC="$(find_nvcc)" || die "GPU=cuda but no CUDA toolkit found (no nvcc in \$CUDACXX, on PATH or in \${CUDA_HOME:-/usr/local/cuda}/bin); install the CUDA toolkit (e.g. pip install nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cublas) or use GPU=cpu"
      BUILD=cuda; REASON="GPU=cuda requested, nvcc $NVCC" ;;
    auto)
      gpus="$(nvml_gpu_count)"
      if [ "$gpus" -gt 0 ] && NVCC="$(find_nvcc)"; then
        BUILD=cuda; REASON="GPU=auto: NVML reports $gpus GPU(s), nvcc $NVCC"
      elif [ "$gpus" -gt 0 ]; then
        BUILD=cpu; REASON="GPU=auto: NVML reports $gpus GPU(s) but no CUDA toolkit (nvcc) was found: CPU build"
      else
        BUILD=cpu; REASON="GPU=auto: NVML reports no GPU: CPU build"
      fi ;;
    *) die "GPU must be auto, cuda or cpu (got '$mode')" ;;
  esac
}

# A toolkit from NVIDIA's PyPI wheels has no cuBLAS: bring the nvidia-cublas wheel of the same major
# version into the venv and lay out one toolkit tree (symlinks) that CMake's FindCUDAToolkit understands.
toolkit_root() {
  local venv="$1" nvcc_root release major py cu tk f
  nvcc_root="$(dirname "$(dirname "$NVCC")")"
  if [ -e "$nvcc_root/include/cublas_v2.h" ]; then echo "$nvcc_root"; return; fi
  release="$("$NVCC" --version | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p')"
  major="${release%%.*}"
  py="$venv/bin/python"
  "$py" -m pip install -q "${CUBLAS_SPEC:-nvidia-cublas>=$major,<$((major + 1))}" "nvidia-cuda-runtime==$release.*" >&2
  cu="$("$py" -c "import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], 'cu$major'))")"
  [ -e "$cu/include/cublas_v2.h" ] || die "nvidia-cublas installed but $cu/include/cublas_v2.h is missing"
  tk="$(cd "$venv" && pwd)/cuda-toolkit"
  if [ -e "$tk/include/cublas_v2.h" ] && [ -e "$tk/lib64/libcublas.so" ]; then echo "$tk"; return; fi
  rm -rf "$tk"; mkdir -p "$tk/include" "$tk/lib64" "$tk/targets/x86_64-linux"
  ln -s "$nvcc_root/bin" "$tk/bin"
  [ -e "$nvcc_root/nvvm" ] && ln -s "$nvcc_root/nvvm" "$tk/nvvm"
  for f in "$cu"/include/* "$nvcc_root"/include/*; do ln -sf "$f" "$tk/include/"; done     # the toolkit's own win
  for f in "$cu"/lib/* "$nvcc_root"/lib64/* "$nvcc_root"/lib/*; do [ -e "$f" ] && ln -sf "$f" "$tk/lib64/"; done
  for f in "$tk"/lib64/lib*.so.[0-9]*; do ln -sf "$(basename "$f")" "$tk/lib64/$(basename "${f%%.so.*}").so"; done
  ln -s lib64 "$tk/lib"; ln -s ../../include "$tk/targets/x86_64-linux/include"; ln -s ../../lib64 "$tk/targets/x86_64-linux/lib"
  echo "$tk"
}

cmake_args() {   # MODE VENV -> stdout; exports CUDACXX for a CUDA build
  resolve "$1" "$2"
  echo "llama-cpp-python build: $BUILD ($REASON)" >&2
  if [ "$BUILD" = cpu ]; then echo "$CPU_ARGS"; return; fi
  local tk; tk="$(toolkit_root "$2")"
  local args="-DGGML_CUDA=on -DGGML_NATIVE=OFF -DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHS -DCUDAToolkit_ROOT=$tk"
  # without the driver's libcuda.so (wheel toolkits ship no stub) build without CUDA VMM (legacy memory pool)
  if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so ' && [ ! -e "$tk/lib64/stubs/libcuda.so" ]; then
    args="$args -DGGML_CUDA_NO_VMM=ON"
  fi
  echo "$args"
}

llama_lib_dir() {   # VENV -> .../site-packages/llama_cpp/lib, or nothing
  "$1/bin/python" -c "import importlib.util as u, os; s = u.find_spec('llama_cpp'); print(os.path.join(os.path.dirname(s.origin), 'lib') if s else '')" 2>/dev/null || true
}

installed_build() {   # VENV -> cpu|cuda|none
  local lib; lib="$(llama_lib_dir "$1")"
  if [ -z "$lib" ]; then echo none; elif ls "$lib"/libggml-cuda.so* >/dev/null 2>&1; then echo cuda; else echo cpu; fi
}

# libggml-cuda.so has RUNPATH $ORIGIN only: CUDA libraries the loader cannot find (cuBLAS from the wheel) are
# linked next to it, so the hubs need no LD_LIBRARY_PATH.
link_cuda_libs() {   # VENV ARGS
  local lib tk name
  lib="$(llama_lib_dir "$1")"
  tk="$(sed -n 's/.*-DCUDAToolkit_ROOT=\([^ ]*\).*/\1/p' <<<"$2")"
  for _ in 1 2 3; do   # ldd names a missing library's own dependencies only once that library is found
    for name in $(ldd "$lib/libggml-cuda.so" | awk '/not found/ {print $1}'); do
      [ -e "$tk/lib64/$name" ] && ln -sf "$(readlink -f "$tk/lib64/$name")" "$lib/$name"
    done
  done
  "$1/bin/python" -c "import llama_cpp" 2>/dev/null || die "llama_cpp does not import: $(ldd "$lib/libggml-cuda.so" | grep 'not found' | tr -s ' \n' ' ')"
}

record() {   # VENV ARGS
  printf 'requested=%s\nbuild=%s\nreason=%s\ncmake_args=%s\n' "$REQUESTED" "$BUILD" "$REASON" "$2" > "$1/.gpu-build"
}

ensure() {   # MODE VENV: install llama-cpp-python as the build MODE resolves to (only it, only when needed)
  local venv="$2" args have spec flags=()
  resolve "$1" "$venv"
  have="$(installed_build "$venv")"
  args="$(cmake_args "$1" "$venv")"
  if [ "$have" != "$BUILD" ]; then
    spec="$(grep -o 'llama-cpp-python[<>=!~][^#[:space:]]*' "$(dirname "$0")/../../setup.cfg" | head -1)"
    if [ "$have" != none ]; then
      spec="llama-cpp-python==$("$venv/bin/python" -m pip show llama-cpp-python | sed -n 's/^Version: //p')"
      flags=(--force-reinstall --no-deps --no-cache-dir)
      echo "llama-cpp-python is a $have build; rebuilding it as $BUILD" >&2
    fi
    if [ "$BUILD" = cuda ]; then export CUDACXX="$NVCC"; fi
    CMAKE_ARGS="$args" "$venv/bin/python" -m pip install -q "${flags[@]}" "$spec"
    [ "$(installed_build "$venv")" = "$BUILD" ] || die "the installed llama-cpp-python is not a $BUILD build"
  fi
  if [ "$BUILD" = cuda ]; then link_cuda_libs "$venv" "$args"; fi
  record "$venv" "$args"
}

case "${1:-}" in
  cmake-args) cmake_args "${2:-}" "${3:-.venv}" ;;
  ensure) ensure "${2:-}" "${3:-.venv}" ;;
  *) echo "usage: $0 cmake-args|ensure MODE VENV" >&2; exit 2 ;;
esac

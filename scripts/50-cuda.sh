#!/usr/bin/env bash
# 50-cuda: the host CUDA toolkit, when the profile asks for one, and the CUDA
# check compiled with it.
#
# Reads GOLDEN_CUDA_PACKAGES (exact or pinned by apt), GOLDEN_CUDA_SOURCE
# (nvidia: cuda-toolkit-X-Y in /usr/local/cuda-X.Y, whose bin/ the file
# /etc/profile.d/golden-cuda.sh puts on PATH for login shells; distro: the OS
# vendor's package, nvcc in /usr/bin), GOLDEN_CUDA_NVCC (the nvcc it installs)
# GOLDEN_CUDA_GPU_ARCH (nvcc -arch for the profile's GPU, e.g. sm_89) and
# GOLDEN_CUDA_CCBIN (nvcc -ccbin, the host compiler; empty: nvcc's choice).
#
# Then compiles scripts/cuda-check.cu with that nvcc and installs it as
# /usr/lib/golden/cuda-check: a toolkit that cannot build CUDA code fails the
# bake here, with the compiler's last lines. The program runs once (no GPU and
# no module in the bake: it answers "no device" or why not); its answer is kept
# in /var/lib/golden/cuda-check-bake.json and judged by verification.
#
# golden-layer: cuda
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=50-cuda; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

CHECK=/usr/lib/golden/cuda-check
BAKE_ANSWER=/var/lib/golden/cuda-check-bake.json

cuda_specs=()
env_words cuda_specs GOLDEN_CUDA_PACKAGES is_install_spec
if ((${#cuda_specs[@]} == 0)); then
    log "no CUDA toolkit in this profile; nothing to do"
    remove_path /etc/profile.d/golden-cuda.sh
    exit 0
fi
# Empty only where the profile has no toolkit (the layer's absent form).
check_env GOLDEN_CUDA_SOURCE is_cuda_source
check_env GOLDEN_CUDA_NVCC is_abs_path
check_env GOLDEN_CUDA_GPU_ARCH is_gpu_arch
check_env GOLDEN_CUDA_CCBIN is_pkg_name
check_env GOLDEN_CUDA_TOOLKIT is_cuda_release
[[ -n ${GOLDEN_CUDA_SOURCE:-} && -n ${GOLDEN_CUDA_NVCC:-} ]] \
    || die "GOLDEN_CUDA_PACKAGES is set without GOLDEN_CUDA_SOURCE and GOLDEN_CUDA_NVCC"
nvcc=$GOLDEN_CUDA_NVCC
arch=${GOLDEN_CUDA_GPU_ARCH:-}

# NVIDIA's toolkit lives in /usr/local/cuda-X.Y (cuda-toolkit-13-2 -> 13.2).
dir=''
if [[ $GOLDEN_CUDA_SOURCE == nvidia ]]; then
    dir=${nvcc%/bin/nvcc}
    [[ $dir =~ ^/usr/local/cuda-[0-9]+\.[0-9]+$ ]] \
        || die "GOLDEN_CUDA_NVCC is not /usr/local/cuda-X.Y/bin/nvcc: $(shown "$nvcc")"
fi

apt_install "${cuda_specs[@]}"
[[ -x $ROOT$nvcc ]] || die "the CUDA toolkit installed no $nvcc"
# The toolkit is the pinned release before anything is built with it: a look-alike package
# or a replaced binary stops the bake here, naming nvcc and both releases.
if [[ -n ${GOLDEN_CUDA_TOOLKIT:-} ]]; then
    banner=$("$ROOT$nvcc" --version 2>&1) || die "$nvcc --version failed: $(tail -n 1 <<<"$banner")"
    [[ $banner =~ release\ ([0-9]+\.[0-9]+), ]] || die "$nvcc --version names no release: $(shown "$(tail -n 2 <<<"$banner")")"
    [[ ${BASH_REMATCH[1]} == "$GOLDEN_CUDA_TOOLKIT" ]] \
        || die "nvcc ($nvcc) reports CUDA release ${BASH_REMATCH[1]}, the profile pins $GOLDEN_CUDA_TOOLKIT"
fi

if [[ -n $dir ]]; then
    put_file 0644 /etc/profile.d/golden-cuda.sh <<EOS
# Written by golden: the pinned CUDA toolkit on PATH.
case ":\${PATH}:" in
    *":$dir/bin:"*) ;;
    *) PATH="$dir/bin:\${PATH}"; export PATH ;;
esac
EOS
else
    remove_path /etc/profile.d/golden-cuda.sh   # the distro's nvcc is in /usr/bin
fi

# --- the CUDA check, built by the image's own compiler
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
args=(-O2 -o "$build/cuda-check" "$GOLDEN_STAGE/scripts/cuda-check.cu")
if [[ -n $arch ]]; then
    args=(-arch "$arch" "${args[@]}")
else
    log "the GPU's compute capability is unknown: cuda-check is built for nvcc's default architecture"
fi
if [[ -n ${GOLDEN_CUDA_CCBIN:-} ]]; then
    args=(-ccbin "$GOLDEN_CUDA_CCBIN" "${args[@]}")
fi
log "compiling cuda-check.cu: $nvcc ${args[*]}"
if ! "$ROOT$nvcc" "${args[@]}" >"$build/nvcc.log" 2>&1 || [[ ! -s $build/cuda-check ]]; then
    while IFS= read -r line; do
        log "nvcc: $line"
    done < <(tail -n 20 "$build/nvcc.log")
    die "nvcc could not compile cuda-check.cu${arch:+ for $arch}: $(tail -n 3 "$build/nvcc.log" | tr '\n' ' ')"
fi
put_copy 0755 "$build/cuda-check" "$CHECK"

# Without a GPU the answer still says whether its runtime can use the driver.
if ! answer=$("$ROOT$CHECK" 2>"$build/run.err"); then
    die "$CHECK failed: $(tail -n 3 "$build/run.err" | tr '\n' ' ')"
fi
answer=$(tail -n 1 <<<"$answer")
[[ $answer == '{"schema": '* ]] || die "$CHECK printed no JSON line: $(shown "$answer")"
log "cuda-check at bake: $answer"
put_file 0644 "$BAKE_ANSWER" <<<"$answer"

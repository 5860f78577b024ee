#!/usr/bin/env bash
# 50-cuda: the host CUDA toolkit, when the profile asks for one.
#
# Reads GOLDEN_CUDA_PACKAGES (cuda-toolkit-X-Y, exact or pinned by apt). The
# toolkit lives in /usr/local/cuda-X.Y; /etc/profile.d/golden-cuda.sh puts its
# bin/ on PATH for login shells.
#
# golden-layer: cuda
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=50-cuda; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

cuda_specs=()
env_words cuda_specs GOLDEN_CUDA_PACKAGES is_install_spec
if ((${#cuda_specs[@]} == 0)); then
    log "no CUDA toolkit in this profile; nothing to do"
    remove_path /etc/profile.d/golden-cuda.sh
    exit 0
fi

# The toolkit directories, from the package names (cuda-toolkit-13-2 -> 13.2).
dirs=()
for spec in "${cuda_specs[@]}"; do
    name=$(spec_name "$spec")
    if [[ $name =~ ^cuda-toolkit-([0-9]+)-([0-9]+)$ ]]; then
        dirs+=("/usr/local/cuda-${BASH_REMATCH[1]}.${BASH_REMATCH[2]}")
    fi
done
((${#dirs[@]})) || die "GOLDEN_CUDA_PACKAGES names no cuda-toolkit-X-Y package: ${cuda_specs[*]}"

apt_install "${cuda_specs[@]}"

profile='# Written by golden: the pinned CUDA toolkit on PATH.
'
for dir in "${dirs[@]}"; do
    [[ -x $ROOT$dir/bin/nvcc ]] || die "the CUDA toolkit installed no $dir/bin/nvcc"
    profile+="case \":\${PATH}:\" in
    *\":$dir/bin:\"*) ;;
    *) PATH=\"$dir/bin:\${PATH}\"; export PATH ;;
esac
"
done
put_file 0644 /etc/profile.d/golden-cuda.sh <<<"${profile%$'\n'}"

#!/usr/bin/env bash
# One entry point for people and CI: installs what golden needs (once), then
# runs an invoke task. `./golden.sh build --profile NAME`, `./golden.sh test`.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the real parts need: Packer (validate, build), shellcheck,
# cloud-init (its schema check), mmdebstrap (local bakes), QEMU, e2fsprogs, dosfstools
# and mtools (boot tests: the disk and the cloud-init seed),
# openssh-server (sshd inside a local bake), zstd (artifacts), skopeo (workload images;
# docker-registry is the tests' registry on 127.0.0.1), busybox-static (the check image
# the boot test starts under the container runtime, golden/checkimage.py), gdisk (sgdisk)
# and qemu-utils (qemu-img) for UEFI disks, ovmf (the UEFI boot test's firmware),
# openssl (Secure Boot's module signing key and its certificate, golden/secureboot.py).
apt_packages=(packer shellcheck cloud-init mmdebstrap openssh-server openssh-client zstd
              dpkg-dev gnupg apt-utils kmod qemu-system-x86 e2fsprogs dosfstools mtools skopeo docker-registry
              busybox-static gdisk qemu-utils ovmf openssl)

missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "golden: missing Debian packages: ${missing[*]} (run this once as root, or install them)" >&2
        exit 1
    fi
    echo "golden: installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.golden-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    echo "golden: setting up .venv (Python dependencies)" >&2
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    touch "$stamp"
fi

# An EC2 bake needs Packer >= 1.7 (Debian's 1.6.6 cannot require IMDSv2):
# `invoke setup.packer --profile P` installs the pinned, signature-checked
# release into .venv when the profile bakes on EC2 and no suitable Packer is
# present, and does nothing otherwise. A dry run installs nothing.
if [[ ${1:-} == build ]]; then
    profile='' target='' dry_run=''
    args=("${@:2}")
    for ((i = 0; i < ${#args[@]}; i++)); do
        case ${args[i]} in
            -p | --profile) profile=${args[i + 1]:-} ;;
            --profile=*) profile=${args[i]#*=} ;;
            -t | --target) target=${args[i + 1]:-} ;;
            --target=*) target=${args[i]#*=} ;;
            -d | --dry-run) dry_run=1 ;;
        esac
    done
    if [[ -n $profile && -z $dry_run ]]; then
        .venv/bin/invoke setup.packer --profile "$profile" ${target:+--target "$target"}
    fi
fi

exec .venv/bin/invoke "$@"

#!/usr/bin/env bash
# 35-driverless: an image for the NVIDIA GPU Operator (driver: none).
#
# The Operator's driver container brings the driver, and requires nouveau kept
# off: nouveau is blacklisted (modprobe.d, also its modeset) and the initramfs
# rebuilt for every kernel, so no early boot loads it either. The kernel's
# headers the driver container compiles against are the kernel step's (30,
# GOLDEN_KERNEL_HEADERS); the container runtime is 60's and stays unconfigured
# for NVIDIA (the Operator's toolkit container configures it).
#
# golden-layer: driverless
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=35-driverless; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

check_env GOLDEN_KERNEL is_kernel
check_env GOLDEN_KERNEL_HEADERS is_bool
blacklist=/etc/modprobe.d/golden-blacklist-nouveau.conf

mapfile -t kernels < <(image_kernels)
((${#kernels[@]})) || die "no kernel in /boot: nothing to rebuild an initramfs for"
if [[ -n ${GOLDEN_KERNEL:-} ]] && ! printf '%s\n' "${kernels[@]}" | grep -qxF "$GOLDEN_KERNEL"; then
    die "the pinned kernel $GOLDEN_KERNEL is not in /boot (kernels: ${kernels[*]})"
fi
command -v update-initramfs >/dev/null 2>&1 || die "no update-initramfs on the image: initramfs-tools is missing"

put_file 0644 "$blacklist" <<'CONF'
# Written by golden: the NVIDIA GPU Operator's driver needs nouveau kept off.
blacklist nouveau
options nouveau modeset=0
CONF
# The initramfs of every kernel carries modprobe.d: rebuilt, no early boot loads nouveau.
update-initramfs -u -k all || die "update-initramfs -u -k all failed"
log "nouveau blacklisted ($blacklist), initramfs rebuilt for ${kernels[*]}; kernel headers: ${GOLDEN_KERNEL_HEADERS:-true}"

#!/usr/bin/env bash
# 30-kernel: the kernel the driver module is built for.
#
# GOLDEN_KERNEL set (an exact ABI, e.g. 6.1.0-50-cloud-amd64): install
# GOLDEN_KERNEL_PACKAGES (that image, its modules and headers), make it the
# default boot entry where there is a bootloader, and remove the kernel
# metapackages (linux-image-cloud-amd64, linux-aws, ...) that would pull a
# newer ABI on the next upgrade, never touching the pinned kernel.
#
# GOLDEN_KERNEL empty: the base image's kernel(s) (/boot/vmlinuz-*) stay; their
# headers are installed so DKMS can build the module, and the kernel packages
# and metapackages are held ("the base image's kernel, held").
#
# GOLDEN_KERNEL_HEADERS false (a driverless image whose GPU Operator uses
# precompiled driver containers): no headers are installed, for either kernel;
# the plan leaves them out of GOLDEN_KERNEL_PACKAGES.
#
# golden-layer: kernel
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=30-kernel; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

check_env GOLDEN_KERNEL is_kernel
check_env GOLDEN_KERNEL_HEADERS is_bool
headers=${GOLDEN_KERNEL_HEADERS:-true}
kernel_specs=()
env_words kernel_specs GOLDEN_KERNEL_PACKAGES is_install_spec
kernel=${GOLDEN_KERNEL:-}
if [[ -n $kernel ]] && ((${#kernel_specs[@]} == 0)); then
    die "GOLDEN_KERNEL is $kernel but GOLDEN_KERNEL_PACKAGES is empty"
fi

# boot_default KERNEL: make KERNEL grub's default entry. GRUB_DEFAULT names the
# entry by its id (gnulinux-KVER-advanced-ROOTUUID), read from grub.cfg; with
# the submenu disabled that id is a top-level entry.
boot_default() {
    local kver=$1 cfg=$ROOT/boot/grub/grub.cfg dropin=/etc/default/grub.d/90-golden-kernel.cfg id
    if [[ -z $ROOT ]] && in_chroot; then
        log "in a chroot: no bootloader to configure; $kver must be chosen by whatever boots the image"
        return 0
    fi
    if ! command -v update-grub >/dev/null 2>&1; then
        log "no update-grub on the image: cannot make $kver the default boot entry"
        local newest
        newest=$(image_kernels | sort -V | tail -n 1)
        [[ $newest == "$kver" ]] || die "$newest would boot instead of the pinned kernel $kver and there is no grub to change that"
        return 0
    fi
    # The entry's id is in grub.cfg whether or not it sits in a submenu; the
    # kernel's own postinst ran update-grub already, else it is run here.
    entry_id() {
        [[ -f $cfg ]] || return 0
        grep -o "\$menuentry_id_option 'gnulinux-$kver-advanced-[^']*'" "$cfg" | head -n 1 | cut -d"'" -f2 || true
    }
    id=$(entry_id)
    if [[ -z $id ]]; then
        update-grub
        id=$(entry_id)
    fi
    [[ -n $id ]] || die "no grub entry for kernel $kver in $cfg"
    [[ $id =~ ^gnulinux-[A-Za-z0-9.+_~-]+-advanced-[A-Za-z0-9-]+$ ]] || die "unexpected grub entry id $(shown "$id")"
    put_file 0644 "$dropin" <<EOF
# Written by golden: boot the pinned kernel $kver.
GRUB_DISABLE_SUBMENU=y
GRUB_DEFAULT='$id'
EOF
    if [[ $PUT_CHANGED == true ]] || ! grep -q "set default=\"$id\"" "$cfg"; then
        update-grub
    fi
    log "default boot entry: $id"
}

if [[ -n $kernel ]]; then
    names=()
    for spec in "${kernel_specs[@]}"; do
        names+=("$(spec_name "$spec")")
    done
    apt_install "${kernel_specs[@]}"
    [[ -f $ROOT/boot/vmlinuz-$kernel ]] || die "installing ${names[*]} gave no /boot/vmlinuz-$kernel"
    if [[ $headers == true ]]; then
        [[ -e $ROOT/lib/modules/$kernel/build/include ]] || die "no headers for $kernel in /lib/modules/$kernel/build"
    fi
    # They may have come in as dependencies of a metapackage removed below:
    # marked manual, autoremove never takes them.
    apt-mark manual "${names[@]}" >/dev/null

    mapfile -t metas < <(kernel_metapackages)
    if ((${#metas[@]})); then
        remove_only "${metas[@]}"
        log "removed kernel metapackages: ${metas[*]}"
    else
        log "no kernel metapackages installed"
    fi
    hold_packages "${names[@]}"
    boot_default "$kernel"
    others=$(image_kernels | grep -vxF "$kernel" | tr '\n' ' ' || true)
    [[ -z $others ]] || log "other kernels on the image (no module is built for them): $others"
else
    mapfile -t kernels < <(image_kernels)
    ((${#kernels[@]})) || die "GOLDEN_KERNEL is empty and the image has no kernel in /boot"
    specs=()
    for k in "${kernels[@]}"; do
        if [[ -e $ROOT/lib/modules/$k/build/include ]]; then
            log "headers for $k already installed"
        fi
        specs+=("linux-headers-$k")
    done
    if [[ $headers == true ]]; then
        apt_install "${specs[@]}"
    else
        log "kernel_headers false: no headers installed for ${kernels[*]}"
    fi
    hold=()
    for k in "${kernels[@]}"; do
        if [[ $headers == true && ! -e $ROOT/lib/modules/$k/build/include ]]; then
            die "linux-headers-$k gave no /lib/modules/$k/build"
        fi
        for prefix in linux-image linux-image-unsigned linux-modules linux-modules-extra linux-headers; do
            if [[ -n $(pkg_version "$prefix-$k") ]]; then
                hold+=("$prefix-$k")
            fi
        done
    done
    mapfile -t metas < <(kernel_metapackages)
    # Held, not removed: the base image's kernel stays, and no upgrade moves it.
    hold_packages "${hold[@]}" "${metas[@]}"
    log "kernels of the image: ${kernels[*]}"
fi

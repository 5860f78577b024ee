#!/usr/bin/env bash
# 40-driver: the NVIDIA driver and its kernel module, built for the IMAGE's
# kernel(s), then held.
#
# Reads GOLDEN_DRIVER_PACKAGES (a pinning package, nvidia-driver-pinning-*,
# goes in alone first: it writes the apt preferences the rest must obey),
# GOLDEN_KERNEL, GOLDEN_MODULE_NAME (Debian's open module is
# nvidia-current-open), GOLDEN_DRIVER_SOURCES and GOLDEN_HOLDS.
#
# The build machine's kernel (`uname -r`) is not the image's in a chroot, and
# may not be on an EC2 builder either; DKMS must not build for it (no headers
# there). DKMS's package hook (common.postinst) is told to build for every
# kernel of the image that has headers (autoinstall_all_kernels, read from the
# environment), the module is then built explicitly per image kernel with
# `dkms autoinstall -k`, and its presence checked with modinfo. A hook failure
# that only concerns a kernel outside the image is tolerated once every image
# kernel has its module.
#
# When golden offers its module cache (local bakes, scripts/lib/modcache.sh),
# the packages go in with the hook off, and each image kernel's module is
# loaded from a cache entry whose key matches (`dkms ldtarball`, `dkms
# install`: installed as DKMS installs what it built) or else compiled and
# handed to the cache. EC2 bakes are offered no cache and compile.
#
# golden-layer: driver
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=40-driver; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

check_env GOLDEN_KERNEL is_kernel
require_env GOLDEN_MODULE_NAME is_module
driver_specs=()
env_words driver_specs GOLDEN_DRIVER_PACKAGES is_install_spec
driver_sources=()
env_words driver_sources GOLDEN_DRIVER_SOURCES is_pkg_name
holds=()
env_words holds GOLDEN_HOLDS is_pkg_name
module=$GOLDEN_MODULE_NAME
kernel=${GOLDEN_KERNEL:-}

pinning=()
rest=()
for spec in "${driver_specs[@]}"; do
    case $(spec_name "$spec") in
        nvidia-driver-pinning-*) pinning+=("$spec") ;;
        *) rest+=("$spec") ;;
    esac
done
((${#rest[@]})) || die "GOLDEN_DRIVER_PACKAGES names no driver package: $(shown "${GOLDEN_DRIVER_PACKAGES:-}")"

# target_kernels: the kernels to build for: exactly GOLDEN_KERNEL when set,
# else every kernel of the image (an image in /boot) with its headers.
target_kernels() {
    local k
    if [[ -n $kernel ]]; then
        printf '%s\n' "$kernel"
        return 0
    fi
    while read -r k; do
        if [[ -e $ROOT/lib/modules/$k/build/include ]]; then
            printf '%s\n' "$k"
        fi
    done < <(image_kernels)
}

mapfile -t kernels < <(target_kernels)
((${#kernels[@]})) || die "no kernel with headers in /lib/modules: nothing to build the driver module for (30-kernel installs them)"
for k in "${kernels[@]}"; do
    [[ -e $ROOT/lib/modules/$k/build/include ]] || die "no headers for $k in /lib/modules/$k/build"
done
log "the driver module is for: ${kernels[*]}"

module_present() {
    local -a base=()
    [[ -z $ROOT ]] || base=(-b "$ROOT")
    modinfo "${base[@]}" -k "$1" -F version "$module" >/dev/null 2>&1
}

# dkms_log: print the last 20 lines of the newest DKMS make.log (a failed
# build leaves it in /var/lib/dkms/MODULE/VERSION/build/) and its path.
dkms_log() {
    local log_file
    log_file=$(find "$ROOT/var/lib/dkms" -name make.log -printf '%T@ %p\n' 2>/dev/null |
        sort -rn | head -n 1 | cut -d' ' -f2- || true)
    if [[ -n $log_file ]]; then
        printf '%s\n' "--- last 20 lines of ${log_file#"$ROOT"} ---" >&2
        tail -n 20 "$log_file" >&2
        printf '%s\n' "---" >&2
        printf '%s' "${log_file#"$ROOT"}"
    else
        printf 'no make.log under /var/lib/dkms'
    fi
}

# build_module KVER: make sure the module exists for KVER, or stop the build.
build_module() {
    local kver=$1 src name
    if module_present "$kver"; then
        log "$module module present for $kver"
        return 0
    fi
    command -v dkms >/dev/null 2>&1 || die "no $module module for $kver and no dkms to build one"
    log "building the $module module for $kver (dkms autoinstall -k $kver)"
    dkms autoinstall -k "$kver" || log "dkms autoinstall -k $kver failed"
    if ! module_present "$kver"; then
        # A module that was never added to DKMS (its hook did not run): add
        # and install it from its source under /usr/src.
        for src in "$ROOT"/usr/src/nvidia*-[0-9]*/dkms.conf; do
            [[ -f $src ]] || continue
            src=${src%/dkms.conf}
            name=${src##*/}
            log "dkms install -m ${name%-*} -v ${name##*-} -k $kver"
            dkms install -m "${name%-*}" -v "${name##*-}" -k "$kver" || true
        done
    fi
    module_present "$kver" && return 0
    local where
    where=$(dkms_log)
    die "the $module module did not build for kernel $kver: see $where"
}

# install_without_autoinstall PKG...: apt-get install with DKMS's package
# hook switched off (/etc/dkms/no-autoinstall: common.postinst exits before
# `dkms add`), so nothing is compiled yet.
install_without_autoinstall() {
    local marker=$ROOT/etc/dkms/no-autoinstall
    install -d -m 0755 "$ROOT/etc/dkms"
    : >"$marker"
    trap 'rm -f "$marker"' EXIT
    apt_get install --allow-downgrades "$no_recommends" "$@" || die "installing $* failed (see the apt-get output above)"
    rm -f "$marker"
    trap - EXIT
}

# cached_module KVER: the module for KVER from the module cache when its key
# matches an entry; else compiled by DKMS (`dkms add`, then build_module) and
# handed to the cache. The DKMS module is the one whose source the driver
# packages put under /usr/src.
cached_module() {
    local kver=$1 conf src name version inputs key
    for conf in "$ROOT"/usr/src/nvidia*-[0-9]*/dkms.conf; do
        [[ -f $conf ]] || continue
        src=${conf%/dkms.conf}
        src=${src##*/}
        name=${src%-*}
        version=${src##*-}
        if ! inputs=$(module_inputs "$name" "$version" "$kver"); then
            log "module cache: cannot tell the module's $inputs for $kver; compiling without the cache"
            dkms_add "$name" "$version"
            build_module "$kver"
            continue
        fi
        key=$(modcache_key "$inputs")
        if modcache_restore "$name" "$version" "$kver" "$key"; then
            continue
        fi
        log "module cache miss for $kver ($key): compiling"
        dkms_add "$name" "$version"
        build_module "$kver"
        modcache_export "$name" "$version" "$kver" "$key" "$inputs"
    done
}

# dkms_add NAME VERSION: what the package hook does first (unless added already).
dkms_add() {
    [[ -e $ROOT/var/lib/dkms/$1/$2/source ]] && return 0
    dkms add -m "$1" -v "$2" || die "dkms add -m $1 -v $2 failed"
}

# Recommends are left out: dkms recommends a headers metapackage
# (linux-headers-amd64, linux-headers-generic), which would pull the newest
# kernel ABI's headers, and DKMS would build for a kernel the image does not
# boot (and, with a pinned old kernel, fail).
no_recommends=--no-install-recommends

# The pinning package writes the preferences the driver packages must obey.
apt_install "$no_recommends" "${pinning[@]}"

# The hook builds for every kernel of the image with headers, and skips the
# others: no special case for `uname -r`.
export autoinstall_all_kernels=y
log "installing: ${rest[*]}"
apt_retry install --download-only --allow-downgrades "$no_recommends" "${rest[@]}"
if modcache_offered; then
    # A module cache is offered (local bakes): the packages go in with DKMS's
    # hook switched off, then each kernel's module is restored from the cache
    # or compiled (and handed back to it) below.
    install_without_autoinstall "${rest[@]}"
elif ! apt_get install --allow-downgrades "$no_recommends" "${rest[@]}"; then
    log "apt-get could not finish the driver install; checking the image's kernels"
    compgen -G "$ROOT/usr/src/nvidia*" >/dev/null ||
        die "installing ${rest[*]} failed (see the apt-get output above)"
    for k in "${kernels[@]}"; do
        build_module "$k"
    done
    # Every image kernel has its module, so what failed was a build for a
    # kernel outside the image (the build machine's): let the package
    # scripts finish without building again, then check apt is content.
    log "the module is built for every image kernel; finishing the package configuration"
    marker=$ROOT/etc/dkms/no-autoinstall
    if [[ ! -e $marker ]]; then
        install -d -m 0755 "$ROOT/etc/dkms"
        : >"$marker"
        trap 'rm -f "$marker"' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive dpkg --configure -a || die "dpkg --configure -a failed after the module was built"
    rm -f "$marker"
    trap - EXIT
    apt_get install --allow-downgrades "$no_recommends" "${rest[@]}" || die "apt-get install ${rest[*]} still fails"
fi
unset autoinstall_all_kernels

# Whatever still brought in a kernel metapackage or headers for a kernel the
# image does not have goes again (30-kernel held the base image's own
# metapackages when no kernel is pinned; those stay).
mapfile -t held < <(apt-mark showhold)
extra=()
while read -r pkg; do
    if [[ -n $kernel ]] || ! printf '%s\n' "${held[@]}" | grep -qxF "$pkg"; then
        extra+=("$pkg")
    fi
done < <(kernel_metapackages; stray_kernel_headers)
if ((${#extra[@]})); then
    remove_only "${extra[@]}"
    log "removed kernel packages the image does not boot: ${extra[*]}"
fi

if modcache_offered; then
    for k in "${kernels[@]}"; do
        cached_module "$k"
    done
    modcache_close_inbox
fi
for k in "${kernels[@]}"; do
    build_module "$k"
done

# Hold every package built from the driver's sources, and the profile's held
# packages installed so far (90-release holds the rest once installed).
mapfile -t from_sources < <(packages_from_sources "${driver_sources[@]}")
installed_holds=()
for name in "${holds[@]}"; do
    if [[ -n $(pkg_version "$name") ]]; then
        installed_holds+=("$name")
    fi
done
hold_packages "${from_sources[@]}" "${installed_holds[@]}"

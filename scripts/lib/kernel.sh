# shellcheck shell=bash
# kernel.sh: the image's kernels and the packages that track them (sourced by
# scripts/lib.sh).

# image_kernels: kernel releases with an image in /boot (symlinks such as
# /boot/vmlinuz or vmlinuz.old are not kernels of their own).
image_kernels() {
    local f k
    for f in "$ROOT"/boot/vmlinuz-*; do
        [[ -f $f && ! -L $f ]] || continue
        k=${f##*/vmlinuz-}
        if is_kernel "$k"; then
            printf '%s\n' "$k"
        fi
    done
}

# has_abi NAME: the package name carries a full kernel release (6.8.0-1021,
# 6.1.0-50, 6.12.48+deb13); metapackages such as linux-aws,
# linux-image-cloud-amd64 or linux-generic-hwe-24.04 do not.
has_abi() {
    [[ $1 =~ -[0-9]+\.[0-9]+\.[0-9]+([-+]|$) ]]
}

# kernel_metapackages: installed packages that track "the newest kernel":
# linux-* without an ABI in the name that are linux-image-/-headers-/-modules-
# themselves or depend on one. linux-base, linux-firmware, linux-kbuild-6.1 or
# linux-tools-common depend on none and are left alone.
kernel_metapackages() {
    local name depends
    # shellcheck disable=SC2016  # ${...} are dpkg-query fields
    while IFS='|' read -r name depends; do
        [[ $name == linux-* ]] || continue
        has_abi "$name" && continue
        if [[ $name =~ ^linux-(image|headers|modules)- ]] ||
            [[ $depends =~ (^|[ ,|])linux-(image|headers|modules)- ]]; then
            printf '%s\n' "$name"
        fi
    done < <(dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${Depends}\n' 'linux-*' 2>/dev/null |
        awk -F'|' '$1 ~ /^[ih]i/ { print $2 "|" $3 }')
}

# stray_kernel_headers: linux-headers-K packages for which the image has no
# kernel K (pulled in by a headers metapackage). DKMS would build for them.
stray_kernel_headers() {
    local d k
    for d in "$ROOT"/lib/modules/*/; do
        k=${d%/}
        k=${k##*/}
        [[ -e $d/build && ! -f $ROOT/boot/vmlinuz-$k ]] || continue
        if [[ -n $(pkg_version "linux-headers-$k") ]]; then
            printf '%s\n' "linux-headers-$k"
        fi
    done
}

# remove_only PKG...: remove exactly these packages. apt simulates first; if
# the removal would take anything else along (a kernel, a package depending on
# them), nothing is removed and the step stops.
remove_only() {
    (($#)) || return 0
    local -a removed
    local pkg
    mapfile -t removed < <(apt_get -s remove "$@" | awk '$1 == "Remv" { print $2 }')
    for pkg in "${removed[@]}"; do
        if ! printf '%s\n' "$@" | grep -qxF "$pkg"; then
            die "removing $* would also remove $pkg"
        fi
    done
    apt_get remove "$@" || die "could not remove $*"
}

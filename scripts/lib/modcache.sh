# shellcheck shell=bash
# modcache.sh: the build machine's cache of DKMS-built driver modules, seen
# from inside the image (sourced by scripts/lib.sh; used by 40-driver).
#
# A local bake offers the cache's entries in MODCACHE_IN (golden/modcache.py
# copies the ones whose manifest checks out there before provisioning) and
# takes new ones from MODCACHE_OUT after it; an EC2 bake offers nothing, so
# MODCACHE_IN does not exist and the driver step compiles as before. golden
# removes both directories before the image is exported.
#
# An entry is named by its key, the sha256 of its `inputs` file: everything
# that decides the built module, one `name=value` line each, sorted by name.
# Its module.dkms.tar.gz is DKMS's own binaries-only archive
# (`dkms mktarball --binaries-only`), loaded back with `dkms ldtarball` and
# installed with `dkms install`, exactly as DKMS installs a module it built.

MODCACHE_IN=/var/cache/golden/modules
MODCACHE_OUT=/var/cache/golden/modules-new
MODCACHE_TARBALL=module.dkms.tar.gz

# modcache_offered: true when golden offers a module cache to this bake.
modcache_offered() {
    [[ -d $ROOT$MODCACHE_IN ]]
}

# modcache_close_inbox: the offered entries are no longer needed (golden
# removes what is left of the cache before export, whatever happens).
modcache_close_inbox() {
    rm -rf -- "$ROOT$MODCACHE_IN"
}

# owner_of PATH: the installed package that ships PATH (from dpkg's file
# lists, so it also answers against a scratch tree), or nothing.
owner_of() {
    local list name
    for list in "$ROOT"/var/lib/dpkg/info/*.list; do
        [[ -f $list ]] || continue
        if grep -qxF -- "$1" "$list"; then
            name=${list##*/}
            name=${name%.list}
            printf '%s\n' "${name%%:*}"
            return 0
        fi
    done
}

# module_inputs NAME VERSION KVER: the cache inputs of DKMS module
# NAME/VERSION built for kernel KVER, sorted by name; fails (printing what is
# unknown) when one of them cannot be told, since a key with a hole could
# match a module built from something else.
module_inputs() {
    local name=$1 version=$2 kver=$3 conf cc src_pkg cc_pkg line value
    conf=$ROOT/lib/modules/$kver/build/include/config/auto.conf
    # The compiler the kernel was built with is the one its headers' Makefile calls (gcc-12 on Debian 12).
    cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\{0,1\}\([^ ]*\) .*/\1/p' "$conf" 2>/dev/null | head -n 1)
    src_pkg=$(owner_of "/usr/src/$name-$version/dkms.conf")
    cc_pkg=""
    [[ -z $cc ]] || cc_pkg=$(owner_of "/usr/bin/$cc")
    local -a lines=(
        "arch=${GOLDEN_ARCH:-}"
        "binutils=$(pkg_version binutils)"
        "compiler=${cc_pkg:+$cc_pkg=$(pkg_version "$cc_pkg")}"
        "dkms=$(pkg_version dkms)"
        "headers=$(pkg_version "linux-headers-$kver")"
        "kernel=$kver"
        "module=$name/$version"
        "module-package=${src_pkg:+$src_pkg=$(pkg_version "$src_pkg")}"
    )
    for line in "${lines[@]}"; do
        value=${line#*=}
        if [[ -z $value || $value == *= ]]; then
            printf '%s\n' "${line%%=*}"
            return 1
        fi
    done
    printf '%s\n' "${lines[@]}"
}

# modcache_key INPUTS: the entry name for INPUTS (module_inputs' output).
modcache_key() {
    printf '%s\n' "$1" | sha256sum | cut -d' ' -f1
}

# modcache_restore NAME VERSION KVER KEY: load and install the cached
# module of KEY with DKMS's own commands; fails when the cache has no entry.
modcache_restore() {
    local name=$1 version=$2 kver=$3 key=$4 tarball
    tarball=$ROOT$MODCACHE_IN/$key/$MODCACHE_TARBALL
    [[ -f $tarball ]] || return 1
    log "module cache hit for $kver ($key): dkms ldtarball, dkms install; nothing compiled"
    dkms ldtarball --archive "$tarball" || die "dkms ldtarball of the cached $name/$version for $kver failed"
    dkms install -m "$name" -v "$version" -k "$kver" ||
        die "dkms install of the cached $name/$version for $kver failed"
}

# modcache_export NAME VERSION KVER KEY INPUTS: hand the module DKMS just
# built to golden, which stores it in the cache after the bake.
modcache_export() {
    local name=$1 version=$2 kver=$3 key=$4 inputs=$5 dir
    dir=$ROOT$MODCACHE_OUT/$key
    install -d -m 0755 "$dir"
    dkms mktarball -m "$name" -v "$version" -k "$kver" --binaries-only \
        --archive "$dir/$MODCACHE_TARBALL" >/dev/null || {
        log "dkms mktarball of $name/$version for $kver failed: not cached"
        rm -rf -- "$dir"
        return 0
    }
    printf '%s\n' "$inputs" >"$dir/inputs"
    log "module for $kver handed to the module cache ($key)"
}

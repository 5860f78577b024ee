#!/usr/bin/env bash
# 80-fabric-manager: NVIDIA Fabric Manager on NVSwitch systems, at exactly the
# driver's version (a mismatch keeps it from starting, and the GPUs from
# talking over NVLink), then enabled.
#
# Also the GPU's driver-versioned extras, with or without a fabric manager:
# GB200/GB300 compute trays have no NVSwitch but run nvidia-imex, which must
# carry exactly the driver's version too.
#
# Reads GOLDEN_FABRIC_MANAGER_PACKAGES (the fabric manager first, extras such
# as nvlsm after), GOLDEN_DRIVER_EXTRA_PACKAGES (nvidia-imex: the driver's
# version, no fabric manager needed), GOLDEN_DRIVER_VERSION and
# GOLDEN_DRIVER_PACKAGES (to read the installed driver's version when no exact
# version is pinned).
#
# golden-layer: fabric-manager
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=80-fabric-manager; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

check_env GOLDEN_DRIVER_VERSION is_driver_version
fm_specs=()
env_words fm_specs GOLDEN_FABRIC_MANAGER_PACKAGES is_install_spec
extra_specs=()
env_words extra_specs GOLDEN_DRIVER_EXTRA_PACKAGES is_install_spec
driver_specs=()
env_words driver_specs GOLDEN_DRIVER_PACKAGES is_install_spec

if ((${#fm_specs[@]} == 0 && ${#extra_specs[@]} == 0)); then
    log "no fabric manager in this profile; nothing to do"
    exit 0
fi

fm=''
if ((${#fm_specs[@]} > 0)); then
    for spec in "${fm_specs[@]}"; do
        name=$(spec_name "$spec")
        if [[ $name == nvidia-fabricmanager || $name == nvidia-fabricmanager-[0-9]* ]]; then
            fm=$name
            break
        fi
    done
    [[ -n $fm ]] || die "GOLDEN_FABRIC_MANAGER_PACKAGES has no nvidia-fabricmanager package: ${fm_specs[*]}"
fi

# The driver version it must equal: the profile's exact version, else the
# installed driver's (the first driver package whose version is a driver's).
want=${GOLDEN_DRIVER_VERSION:-}
if [[ -z $want ]]; then
    for spec in "${driver_specs[@]}"; do
        name=$(spec_name "$spec")
        [[ $name == nvidia-driver-pinning-* ]] && continue
        version=$(pkg_version "$name")
        [[ -n $version ]] || continue
        upstream=$(upstream_version "$version")
        if is_driver_version "$upstream"; then
            want=$upstream
            log "driver version $want (from $name $version)"
            break
        fi
    done
    [[ -n $want ]] || die "cannot tell the installed driver's version from ${driver_specs[*]}"
fi

# matches_driver NAME: the installed NAME carries exactly the driver's version.
matches_driver() {
    local v got
    v=$(pkg_version "$1")
    [[ -n $v ]] || die "$1 is not installed after apt-get install"
    got=$(upstream_version "$v")
    [[ $got == "$want" ]] || die "$1 $v does not match the driver $want: it must be the driver's exact version"
    log "$1 $v matches the driver $want"
}

if ((${#extra_specs[@]} > 0)); then
    apt_install "${extra_specs[@]}"
    for spec in "${extra_specs[@]}"; do
        matches_driver "$(spec_name "$spec")"
    done
fi

if [[ -z $fm ]]; then
    log "no fabric manager in this profile (no NVSwitch)"
    exit 0
fi

apt_install "${fm_specs[@]}"

version=$(pkg_version "$fm")
[[ -n $version ]] || die "$fm is not installed after apt-get install"
got=$(upstream_version "$version")
[[ $got == "$want" ]] || die "$fm $version does not match the driver $want: the fabric manager must be the driver's exact version"
log "$fm $version matches the driver $want"

enable_unit nvidia-fabricmanager.service

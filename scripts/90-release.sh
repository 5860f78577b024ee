#!/usr/bin/env bash
# 90-release: the last holds, the release manifest /etc/golden/release.json,
# and the boot check that compares the running GPU stack with it.
#
# release.json records what is on the image, read off the image (dpkg, the
# built module), not what was asked for: profile, build id, OS, kernels, the
# driver (version from `modinfo -F version` of the module; null on an image
# without one, GOLDEN_DRIVER_BRANCH unset), CUDA toolkit, container toolkit,
# runtime, the workloads golden advertises (each with its digest and the
# gate's verdict) with the driver's CUDA ceiling, and `packages`: name ->
# installed version for every held package and every package built from the
# driver's sources.
#
# This step gathers and checks the facts; scripts/release.py turns them into
# JSON (json.dump), and golden-gpu-check reads it back with python3.
#
# golden-layer: base
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=90-release; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

require_env GOLDEN_PROFILE is_profile
require_env GOLDEN_BUILD_ID is_uuid
require_env GOLDEN_OS is_os_id
require_env GOLDEN_OS_FAMILY is_family
require_env GOLDEN_OS_CODENAME is_codename
require_env GOLDEN_ARCH is_arch
check_env GOLDEN_KERNEL is_kernel
# The driver layer: present when GOLDEN_DRIVER_BRANCH is set.
check_env GOLDEN_DRIVER_BRANCH is_branch
has_driver=false
if [[ -n ${GOLDEN_DRIVER_BRANCH:-} ]]; then
    has_driver=true
    require_env GOLDEN_DRIVER_FLAVOR is_flavor
    require_env GOLDEN_MODULE_NAME is_module
fi
check_env GOLDEN_DRIVER_VERSION is_driver_version
check_env GOLDEN_DRIVER_SOURCE is_driver_source
check_env GOLDEN_CTK_VERSION is_version
check_env GOLDEN_CDI is_bool
check_env GOLDEN_CDI_REFRESH is_bool
check_env GOLDEN_RUNTIME is_runtime
check_env GOLDEN_RUNTIME_SERVICE is_service_name
check_env GOLDEN_PERSISTENCE is_bool
# The data-disks layer: present when GOLDEN_DATA_DISKS_MOUNT is set.
check_env GOLDEN_DATA_DISKS_MOUNT is_abs_path
driver_sources=()
env_words driver_sources GOLDEN_DRIVER_SOURCES is_pkg_name
holds=()
env_words holds GOLDEN_HOLDS is_pkg_name
cuda_specs=()
env_words cuda_specs GOLDEN_CUDA_PACKAGES is_install_spec
check_env GOLDEN_CUDA_TOOLKIT is_cuda_release
ctk_specs=()
env_words ctk_specs GOLDEN_CTK_PACKAGES is_install_spec
runtime_specs=()
env_words runtime_specs GOLDEN_RUNTIME_PACKAGES is_install_spec
fm_specs=()
env_words fm_specs GOLDEN_FABRIC_MANAGER_PACKAGES is_install_spec
module=${GOLDEN_MODULE_NAME:-}

# ---------------------------------------------------------------- what is installed

declare -A version_of=() # package name -> installed version
declare -A binary_of=()  # package name -> name for apt-mark (arch-qualified if need be)
declare -A from_source=() # package names built from a driver source
while IFS=$'\t' read -r binary name source version; do
    version_of[$name]=$version
    binary_of[$name]=$binary
    for want in "${driver_sources[@]}"; do
        if [[ $source == "$want" ]]; then
            from_source[$name]=1
        fi
    done
done < <(installed_packages)

# The last holds: what the profile holds must all be there now.
to_hold=()
for name in "${holds[@]}"; do
    [[ -n ${version_of[$name]:-} ]] || die "$name (GOLDEN_HOLDS) is not installed"
    to_hold+=("${binary_of[$name]}")
done
for name in "${!from_source[@]}"; do
    to_hold+=("${binary_of[$name]}")
done
mapfile -t to_hold < <(printf '%s\n' "${to_hold[@]}" | sort -u | sed '/^$/d')
hold_packages "${to_hold[@]}"

# ---------------------------------------------------------------- kernels and the module

mapfile -t kernels < <(image_kernels | sort -V)
((${#kernels[@]})) || die "no kernel in /boot"

module_kernels=()
driver_version=''
if [[ $has_driver == true ]]; then
    base=()
    [[ -z $ROOT ]] || base=(-b "$ROOT")
    for k in "${kernels[@]}"; do
        if [[ -n ${GOLDEN_KERNEL:-} && $k != "$GOLDEN_KERNEL" ]]; then
            continue
        fi
        v=$(modinfo "${base[@]}" -k "$k" -F version "$module" 2>/dev/null || true)
        if [[ -z $v ]]; then
            log "kernel $k has no $module module"
            continue
        fi
        is_driver_version "$v" || die "the $module module for $k reports version $(shown "$v")"
        if [[ -n $driver_version && $v != "$driver_version" ]]; then
            die "the $module module differs between kernels: $driver_version and $v ($k)"
        fi
        driver_version=$v
        module_kernels+=("$k")
    done
    [[ -n $driver_version ]] || die "no kernel of the image (${kernels[*]}) has the $module module"
    if [[ -n ${GOLDEN_KERNEL:-} && ${module_kernels[0]:-} != "$GOLDEN_KERNEL" ]]; then
        die "the pinned kernel $GOLDEN_KERNEL has no $module module"
    fi
    if [[ -n ${GOLDEN_DRIVER_VERSION:-} && $driver_version != "$GOLDEN_DRIVER_VERSION" ]]; then
        die "the $module module is $driver_version, the profile pins $GOLDEN_DRIVER_VERSION"
    fi
else
    log "no driver in this profile: release.json records none"
fi

# ---------------------------------------------------------------- the other components

# The toolkit: its release as pinned (NVIDIA's cuda-toolkit-X-Y or the OS vendor's
# nvidia-cuda-toolkit; the cuda step checked nvcc against it), its package and version.
cuda_toolkit='' cuda_package='' cuda_version=''
if ((${#cuda_specs[@]})); then
    cuda_package=$(spec_name "${cuda_specs[0]}")
    cuda_version=${version_of[$cuda_package]:-}
    [[ -n $cuda_version ]] || die "$cuda_package is not installed"
    cuda_toolkit=${GOLDEN_CUDA_TOOLKIT:-}
    if [[ -z $cuda_toolkit && $cuda_package =~ ^cuda-toolkit-([0-9]+)-([0-9]+)$ ]]; then
        cuda_toolkit=${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
    fi
    [[ -n $cuda_toolkit ]] || die "cannot tell the CUDA release of $cuda_package (GOLDEN_CUDA_TOOLKIT is unset)"
fi

ctk_version='' ctk_package_version=''
if ((${#ctk_specs[@]})); then
    ctk_package_version=${version_of[nvidia-container-toolkit]:-}
    [[ -n $ctk_package_version ]] || die "nvidia-container-toolkit is not installed"
    ctk_version=$(upstream_version "$ctk_package_version")
    if [[ -n ${GOLDEN_CTK_VERSION:-} && $ctk_version != "$GOLDEN_CTK_VERSION" ]]; then
        die "nvidia-container-toolkit is $ctk_version, the profile pins $GOLDEN_CTK_VERSION"
    fi
fi
cdi=false
[[ ${GOLDEN_CDI:-false} == true && -n $ctk_version ]] && cdi=true
cdi_refresh=false
[[ $cdi == true && ${GOLDEN_CDI_REFRESH:-false} == true ]] && cdi_refresh=true

runtime_package='' runtime_version=''
if ((${#runtime_specs[@]})); then
    runtime_package=$(spec_name "${runtime_specs[0]}")
    runtime_version=${version_of[$runtime_package]:-}
    [[ -n $runtime_version ]] || die "$runtime_package is not installed"
fi

fm_package='' fm_version=''
if ((${#fm_specs[@]})); then
    fm_package=$(spec_name "${fm_specs[0]}")
    fm_version=${version_of[$fm_package]:-}
    [[ -n $fm_version ]] || die "$fm_package is not installed"
fi

# ---------------------------------------------------------------- release.json

# The recorded packages: the held ones and those built from the driver's
# sources, sorted by name.
mapfile -t recorded < <(printf '%s\n' "${holds[@]}" "${!from_source[@]}" | sed '/^$/d' | sort -u)

# Secure Boot: the certificate 42-module-signing left for DKMS (the key is gone).
signing_cert_sha256=''
if [[ ${GOLDEN_SECURE_BOOT:-false} == true ]]; then
    cert=$ROOT/var/lib/dkms/mok.pub
    [[ -f $cert ]] || die "target.secure_boot: no signing certificate at /var/lib/dkms/mok.pub"
    signing_cert_sha256=sha256:$(sha256sum "$cert" | cut -d' ' -f1)
fi

command -v python3 >/dev/null 2>&1 || die "python3 is not on the image: cannot write release.json"
advert=$GOLDEN_STAGE/scripts/workloads.json
[[ -f $advert ]] || die "no $advert: golden renders it with the scripts (render again)"
manifest=$(
    for name in "${recorded[@]}"; do
        printf '%s\t%s\n' "$name" "${version_of[$name]}"
    done | python3 "$GOLDEN_STAGE/scripts/release.py" render \
        kernels="${kernels[*]}" driver_version="$driver_version" module_kernels="${module_kernels[*]}" \
        cuda_toolkit="$cuda_toolkit" cuda_package="$cuda_package" cuda_version="$cuda_version" \
        ctk_version="$ctk_version" ctk_package_version="$ctk_package_version" \
        cdi="$cdi" cdi_refresh="$cdi_refresh" \
        runtime_package="$runtime_package" runtime_version="$runtime_version" \
        fm_package="$fm_package" fm_version="$fm_version" advert="$advert" \
        data_disks_mount="${GOLDEN_DATA_DISKS_MOUNT:-}" signing_cert_sha256="$signing_cert_sha256"
) || die "release.py could not make release.json (see above)"
put_file 0644 /etc/golden/release.json <<<"$manifest"

# ---------------------------------------------------------------- boot check and first boot

put_copy 0755 "$GOLDEN_STAGE/scripts/golden-gpu-check.sh" /usr/local/sbin/golden-gpu-check
put_copy 0644 "$GOLDEN_STAGE/scripts/golden-gpu-check.service" /etc/systemd/system/golden-gpu-check.service
install -d -m 0755 "$ROOT/var/lib/golden"
enable_unit golden-gpu-check.service

first_boot=$GOLDEN_STAGE/cloud-init/first-boot.cfg
if [[ ! -f $first_boot ]]; then
    log "no cloud-init/first-boot.cfg uploaded; nothing for cloud-init"
elif [[ ! -d $ROOT/etc/cloud ]]; then
    log "cloud-init is not installed on the image; first-boot.cfg not installed"
else
    put_copy 0644 "$first_boot" /etc/cloud/cloud.cfg.d/90-golden.cfg
fi
if [[ $has_driver == true ]]; then
    log "release: $GOLDEN_PROFILE, driver $driver_version ($GOLDEN_DRIVER_FLAVOR), ${#recorded[@]} packages recorded"
else
    log "release: $GOLDEN_PROFILE, no driver, ${#recorded[@]} packages recorded"
fi

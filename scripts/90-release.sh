#!/usr/bin/env bash
# 90-release: the last holds, the release manifest /etc/golden/release.json,
# and the boot check that compares the running GPU stack with it.
#
# release.json records what is on the image, read off the image (dpkg, the
# built module), not what was asked for: profile, build id, OS, kernels, the
# driver (version from `modinfo -F version` of the module), CUDA toolkit,
# container toolkit, runtime, and `packages`: name -> installed version for
# every held package and every package built from the driver's sources.
#
# The JSON is written without jq or python: every value is checked against a
# strict pattern first (lib.sh json_*), so none can hold a quote. Each object
# but `packages` sits on one line, which golden-gpu-check relies on to read it
# back without a JSON parser.
set -euo pipefail
GOLDEN_STEP=90-release
stage=${GOLDEN_STAGE:-/tmp/golden}
[[ $stage =~ ^/[A-Za-z0-9._/-]*$ ]] || { echo "golden[$GOLDEN_STEP]: bad GOLDEN_STAGE" >&2; exit 1; }
# shellcheck source=lib.sh
source "$stage/scripts/lib.sh"

require_env GOLDEN_PROFILE is_profile
require_env GOLDEN_BUILD_ID is_uuid
require_env GOLDEN_OS is_os_id
require_env GOLDEN_OS_FAMILY is_family
require_env GOLDEN_OS_CODENAME is_codename
require_env GOLDEN_ARCH is_arch
check_env GOLDEN_KERNEL is_kernel
require_env GOLDEN_DRIVER_BRANCH is_branch
check_env GOLDEN_DRIVER_VERSION is_driver_version
require_env GOLDEN_DRIVER_FLAVOR is_flavor
check_env GOLDEN_DRIVER_SOURCE is_driver_source
require_env GOLDEN_MODULE_NAME is_module
check_env GOLDEN_CTK_VERSION is_version
check_env GOLDEN_CDI is_bool
check_env GOLDEN_CDI_REFRESH is_bool
check_env GOLDEN_RUNTIME is_runtime
check_env GOLDEN_RUNTIME_SERVICE is_service_name
check_env GOLDEN_PERSISTENCE is_bool
driver_sources=()
env_words driver_sources GOLDEN_DRIVER_SOURCES is_pkg_name
holds=()
env_words holds GOLDEN_HOLDS is_pkg_name
cuda_specs=()
env_words cuda_specs GOLDEN_CUDA_PACKAGES is_install_spec
ctk_specs=()
env_words ctk_specs GOLDEN_CTK_PACKAGES is_install_spec
runtime_specs=()
env_words runtime_specs GOLDEN_RUNTIME_PACKAGES is_install_spec
fm_specs=()
env_words fm_specs GOLDEN_FABRIC_MANAGER_PACKAGES is_install_spec
module=$GOLDEN_MODULE_NAME

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

kernels=()
for f in "$ROOT"/boot/vmlinuz-*; do
    [[ -f $f && ! -L $f ]] || continue
    k=${f##*/vmlinuz-}
    is_kernel "$k" && kernels+=("$k")
done
((${#kernels[@]})) || die "no kernel in /boot"
mapfile -t kernels < <(printf '%s\n' "${kernels[@]}" | sort -V)

base=()
[[ -z $ROOT ]] || base=(-b "$ROOT")
module_kernels=()
driver_version=''
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

# ---------------------------------------------------------------- the other components

cuda_toolkit='' cuda_package='' cuda_version=''
for spec in "${cuda_specs[@]}"; do
    name=$(spec_name "$spec")
    if [[ $name =~ ^cuda-toolkit-([0-9]+)-([0-9]+)$ ]]; then
        cuda_toolkit=${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
        cuda_package=$name
        cuda_version=${version_of[$name]:-}
        [[ -n $cuda_version ]] || die "$name is not installed"
        break
    fi
done

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

json_str "$GOLDEN_PROFILE"; j_profile=$J
json_str "$GOLDEN_BUILD_ID"; j_build=$J
json_str "$GOLDEN_OS"; j_os=$J
json_str "$GOLDEN_OS_FAMILY"; j_family=$J
json_str "$GOLDEN_OS_CODENAME"; j_codename=$J
json_str "$GOLDEN_ARCH"; j_arch=$J
json_opt "${GOLDEN_KERNEL:-}"; j_pinned=$J
json_list "${kernels[@]}"; j_kernels=$J
json_str "$GOLDEN_DRIVER_BRANCH"; j_branch=$J
json_str "$driver_version"; j_driver=$J
json_str "$GOLDEN_DRIVER_FLAVOR"; j_flavor=$J
json_opt "${GOLDEN_DRIVER_SOURCE:-}"; j_source=$J
json_str "$module"; j_module=$J
json_list "${module_kernels[@]}"; j_module_kernels=$J
json_opt "$cuda_toolkit"; j_cuda=$J
json_opt "$cuda_package"; j_cuda_pkg=$J
json_opt "$cuda_version"; j_cuda_ver=$J
json_opt "$ctk_version"; j_ctk=$J
json_opt "$ctk_package_version"; j_ctk_pkg=$J
json_str "${GOLDEN_RUNTIME:-none}"; j_runtime=$J
json_opt "${GOLDEN_RUNTIME_SERVICE:-}"; j_service=$J
json_opt "$runtime_package"; j_rt_pkg=$J
json_opt "$runtime_version"; j_rt_ver=$J
json_opt "$fm_package"; j_fm_pkg=$J
json_opt "$fm_version"; j_fm_ver=$J
fm_enabled=false
[[ -n $fm_package ]] && fm_enabled=true

packages=''
sep=''
for name in "${recorded[@]}"; do
    json_str "$name"
    key=$J
    json_str "${version_of[$name]}"
    packages+="$sep
    $key: $J"
    sep=','
done

put_file 0644 /etc/golden/release.json <<EOF
{
  "schema": 1,
  "profile": $j_profile,
  "build_id": $j_build,
  "os": {"id": $j_os, "family": $j_family, "codename": $j_codename, "arch": $j_arch},
  "kernel": {"pinned": $j_pinned, "installed": $j_kernels},
  "driver": {"branch": $j_branch, "version": $j_driver, "flavor": $j_flavor, "source": $j_source, "module": $j_module, "kernels": $j_module_kernels},
  "cuda": {"toolkit": $j_cuda, "package": $j_cuda_pkg, "version": $j_cuda_ver},
  "container_toolkit": {"version": $j_ctk, "package_version": $j_ctk_pkg, "cdi": $cdi, "cdi_refresh": $cdi_refresh},
  "runtime": {"name": $j_runtime, "service": $j_service, "package": $j_rt_pkg, "version": $j_rt_ver},
  "fabric_manager": {"enabled": $fm_enabled, "package": $j_fm_pkg, "version": $j_fm_ver},
  "persistence": ${GOLDEN_PERSISTENCE:-false},
  "packages": {$packages
  }
}
EOF

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
log "release: $GOLDEN_PROFILE, driver $driver_version ($GOLDEN_DRIVER_FLAVOR), ${#recorded[@]} packages recorded"

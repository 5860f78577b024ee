#!/usr/bin/env bash
# 70-container-toolkit: the NVIDIA Container Toolkit, the runtime configured
# for it, and the CDI specification kept current.
#
# Reads GOLDEN_CTK_PACKAGES, GOLDEN_RUNTIME, GOLDEN_RUNTIME_SERVICE, GOLDEN_CDI
# and GOLDEN_CDI_REFRESH.
# - `nvidia-ctk runtime configure` adds the nvidia runtime: for docker in
#   /etc/docker/daemon.json, for containerd in the drop-in
#   /etc/containerd/conf.d/99-nvidia.toml (imported from config.toml).
# - CDI: toolkits from 1.18 ship nvidia-cdi-refresh.path, which regenerates
#   /var/run/cdi/nvidia.yaml whenever the driver changes; before 1.18 golden's
#   own golden-cdi-generate.service generates it at boot.
#
# golden-layer: container-toolkit
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=70-container-toolkit; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

check_env GOLDEN_RUNTIME is_runtime
check_env GOLDEN_RUNTIME_SERVICE is_service_name
check_env GOLDEN_CDI is_bool
check_env GOLDEN_CDI_REFRESH is_bool
ctk_specs=()
env_words ctk_specs GOLDEN_CTK_PACKAGES is_install_spec

if ((${#ctk_specs[@]} == 0)); then
    log "no NVIDIA Container Toolkit in this profile; nothing to do"
    exit 0
fi
runtime=${GOLDEN_RUNTIME:-none}
service=${GOLDEN_RUNTIME_SERVICE:-}

apt_install "${ctk_specs[@]}"
command -v nvidia-ctk >/dev/null 2>&1 || die "the container toolkit installed no nvidia-ctk"

# checksum FILE...: a fingerprint of the files (missing ones included), to
# tell whether nvidia-ctk changed anything.
checksum() {
    local f
    for f in "$@"; do
        if [[ -f $ROOT$f ]]; then
            sha256sum <"$ROOT$f"
        else
            echo "missing $f"
        fi
    done
}

case $runtime in
    docker | containerd)
        args=(runtime configure "--runtime=$runtime")
        files=(/etc/docker/daemon.json)
        if [[ $runtime == containerd ]]; then
            files=(/etc/containerd/config.toml /etc/containerd/conf.d/99-nvidia.toml)
            # Toolkits that know drop-ins write this one by default; naming it
            # keeps the place fixed (older ones lack the flag and edit
            # config.toml itself).
            if nvidia-ctk runtime configure --help 2>&1 | grep -q -- '--drop-in-config'; then
                args+=(--drop-in-config=/etc/containerd/conf.d/99-nvidia.toml)
            else
                log "this nvidia-ctk has no --drop-in-config: it configures /etc/containerd/config.toml"
            fi
        fi
        before=$(checksum "${files[@]}")
        nvidia-ctk "${args[@]}" || die "nvidia-ctk ${args[*]} failed"
        # What it wrote must name the nvidia runtime; a toolkit that silently
        # wrote nothing would leave containers without GPUs.
        found=''
        for f in "${files[@]}"; do
            if [[ -f $ROOT$f ]] && grep -q 'nvidia' "$ROOT$f"; then
                found=$f
            fi
        done
        [[ -n $found ]] || die "nvidia-ctk ${args[*]} left no nvidia runtime in ${files[*]}"
        if [[ $(checksum "${files[@]}") == "$before" ]]; then
            log "runtime configuration unchanged (${files[*]})"
        else
            log "configured the nvidia runtime for $runtime (${files[*]})"
            if systemd_running && [[ -n $service ]]; then
                systemctl restart "$service" || die "could not restart $service"
                log "restarted $service"
            else
                log "in a chroot: $service picks up its configuration at the image's first boot"
            fi
        fi
        ;;
    none)
        log "no container runtime to configure"
        ;;
esac

if [[ ${GOLDEN_CDI:-false} == true ]]; then
    if [[ ${GOLDEN_CDI_REFRESH:-false} == true ]]; then
        [[ -f $ROOT/usr/lib/systemd/system/nvidia-cdi-refresh.path || -f $ROOT/lib/systemd/system/nvidia-cdi-refresh.path ]] ||
            die "the container toolkit ships no nvidia-cdi-refresh.path (expected from 1.18 on)"
        enable_unit nvidia-cdi-refresh.path
        enable_unit nvidia-cdi-refresh.service
    else
        put_copy 0644 "$GOLDEN_STAGE/scripts/golden-cdi-generate.service" \
            /etc/systemd/system/golden-cdi-generate.service
        enable_unit golden-cdi-generate.service
    fi
else
    log "CDI is off in this profile"
fi

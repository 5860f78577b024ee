#!/usr/bin/env bash
# 60-runtime: the container runtime (docker.io or containerd), enabled.
#
# Reads GOLDEN_RUNTIME, GOLDEN_RUNTIME_PACKAGES and GOLDEN_RUNTIME_SERVICE.
# With systemd running the service is enabled and started (70 configures and
# restarts it); inside a chroot it is only enabled, offline, and starts on the
# image's first boot.
#
# golden-layer: runtime
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=60-runtime; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

check_env GOLDEN_RUNTIME is_runtime
check_env GOLDEN_RUNTIME_SERVICE is_service_name
runtime_specs=()
env_words runtime_specs GOLDEN_RUNTIME_PACKAGES is_install_spec

if [[ ${GOLDEN_RUNTIME:-none} == none ]] || ((${#runtime_specs[@]} == 0)); then
    log "no container runtime in this profile; nothing to do"
    exit 0
fi
[[ -n ${GOLDEN_RUNTIME_SERVICE:-} ]] || die "GOLDEN_RUNTIME_SERVICE is not set for runtime $GOLDEN_RUNTIME"

apt_install "${runtime_specs[@]}"
enable_unit "$GOLDEN_RUNTIME_SERVICE" --now

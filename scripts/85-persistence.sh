#!/usr/bin/env bash
# 85-persistence: nvidia-persistenced, installed and enabled, when the profile
# asks for persistence mode (the driver stays initialised between jobs).
#
# Reads GOLDEN_PERSISTENCE and GOLDEN_PERSISTENCE_PACKAGES. The daemon is only
# enabled, not started: it starts at the image's boot, once a GPU is there.
#
# golden-layer: persistence
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=85-persistence; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

check_env GOLDEN_PERSISTENCE is_bool
persistence_specs=()
env_words persistence_specs GOLDEN_PERSISTENCE_PACKAGES is_install_spec

if [[ ${GOLDEN_PERSISTENCE:-false} != true ]]; then
    log "persistence mode is off in this profile; nothing to do"
    exit 0
fi
apt_install "${persistence_specs[@]}"
enable_unit nvidia-persistenced.service

#!/usr/bin/env bash
# 65-data-disks: local NVMe (EC2's instance store) for data and the container
# runtime's storage: mdadm, /usr/local/sbin/golden-data-disks and its unit,
# enabled, and /etc/golden/data-disks.conf.
#
# Reads GOLDEN_DATA_DISKS_PACKAGES, GOLDEN_DATA_DISKS_MODEL, GOLDEN_DATA_DISKS_MOUNT,
# GOLDEN_DATA_DISKS_FS and GOLDEN_DATA_DISKS_STORAGE (the runtime's storage
# directory, empty without a runtime). Nothing is done to any disk at bake:
# the unit finds, assembles or builds the RAID0 and mounts it at every boot
# (the instance store is empty after each stop/start), before the runtime
# starts, and bind-mounts the runtime's directory onto it (see
# golden-data-disks.sh for why a bind mount and not data-root/root).
#
# golden-layer: data-disks
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=65-data-disks; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

require_env GOLDEN_DATA_DISKS_MODEL is_nvme_model
require_env GOLDEN_DATA_DISKS_MOUNT is_abs_path
require_env GOLDEN_DATA_DISKS_FS is_data_fs
check_env GOLDEN_DATA_DISKS_STORAGE is_abs_path
data_specs=()
env_words data_specs GOLDEN_DATA_DISKS_PACKAGES is_install_spec
((${#data_specs[@]})) || die "GOLDEN_DATA_DISKS_PACKAGES is empty: mdadm is needed for the RAID0"

# mdadm's own boot-time assembly needs no configuration: golden-data-disks
# assembles the array by its name and rebuilds it when the disks are empty.
apt_install "${data_specs[@]}"

put_file 0644 /etc/golden/data-disks.conf <<CONF
model=$GOLDEN_DATA_DISKS_MODEL
mount=$GOLDEN_DATA_DISKS_MOUNT
filesystem=$GOLDEN_DATA_DISKS_FS
storage=${GOLDEN_DATA_DISKS_STORAGE:-}
CONF
put_copy 0755 "$GOLDEN_STAGE/scripts/golden-data-disks.sh" /usr/local/sbin/golden-data-disks
put_copy 0644 "$GOLDEN_STAGE/scripts/golden-data-disks.service" /etc/systemd/system/golden-data-disks.service
enable_unit golden-data-disks.service
log "data disks: NVMe model \"$GOLDEN_DATA_DISKS_MODEL\" at $GOLDEN_DATA_DISKS_MOUNT ($GOLDEN_DATA_DISKS_FS)," \
    "runtime storage ${GOLDEN_DATA_DISKS_STORAGE:-none}"

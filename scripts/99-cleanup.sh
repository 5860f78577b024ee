#!/usr/bin/env bash
# 99-cleanup: leave nothing of the build machine, or of this build, that every
# instance of the image would share: apt caches and lists, logs, the machine
# id, SSH host keys, cloud-init's state, golden's uploaded files and the build's
# policy-rc.d.
#
# When baking locally the build machine reaches the chroot through an sshd
# running inside it; that sshd already loaded its host keys, so removing them
# here does not cut the session. New keys are made at first boot (cloud-init).
#
# golden-layer: base
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=99-cleanup; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

# apt: downloaded packages and package lists (an instance runs apt-get update).
apt_get clean
find "$ROOT/var/lib/apt/lists" -mindepth 1 -delete 2>/dev/null || true
log "apt cache and lists emptied"

# Logs: rotated ones removed, the others emptied (services keep their open
# files). The journal is rotated and vacuumed on a running system; inside a
# chroot its files belong to no journald and are removed.
if [[ -d $ROOT/var/log ]]; then
    find "$ROOT/var/log" -type f \( -name '*.gz' -o -name '*.xz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
    if systemd_running && command -v journalctl >/dev/null 2>&1; then
        journalctl --rotate >/dev/null 2>&1 || true
        journalctl --vacuum-time=1s >/dev/null 2>&1 || true
    else
        find "$ROOT/var/log/journal" -type f -name '*.journal*' -delete 2>/dev/null || true
    fi
    find "$ROOT/var/log" -type f ! -name '*.journal*' -size +0 -exec truncate -s 0 {} +
    log "logs truncated"
fi

# The machine id: emptied, not removed. systemd makes a new one at first boot
# for an empty file and treats the boot as a first boot (presets apply).
if [[ -e $ROOT/etc/machine-id ]]; then
    truncate -s 0 "$ROOT/etc/machine-id"
    log "emptied /etc/machine-id"
fi
remove_path /var/lib/dbus/machine-id

# SSH host keys: each instance makes its own.
for key in "$ROOT"/etc/ssh/ssh_host_*; do
    [[ -e $key ]] || continue
    remove_path "${key#"$ROOT"}"
done

# Shell history of the build, and any boot check result from the build
# machine: an instance writes its own at boot.
remove_path /root/.bash_history
remove_path /var/lib/golden/gpu-check.json

if command -v cloud-init >/dev/null 2>&1; then
    cloud-init clean --logs || die "cloud-init clean --logs failed"
    log "cloud-init state cleaned"
fi

remove_policy_rc_d

# The uploaded files, recognised by scripts/lib.sh (never a directory such as
# / or /tmp itself, whatever GOLDEN_STAGE says).
if [[ $GOLDEN_STAGE =~ ^/[^/]+/[^/]+ && -f $GOLDEN_STAGE/scripts/lib.sh ]]; then
    rm -rf -- "$GOLDEN_STAGE"
    log "removed $GOLDEN_STAGE"
fi
log "cleanup done"

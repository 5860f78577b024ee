#!/usr/bin/env bash
# 45-reboot: reboot into the image's kernel so that it loads the new module.
#
# The reboot is scheduled a few seconds ahead and this step returns at once,
# so the provisioner ends cleanly; the Packer template marks this step
# expect_disconnect and waits before the next one (pause_before).
#
# Skipped where no kernel of the image is running: in a chroot (a local bake),
# and where systemd is not PID 1 (a container). Skipped too when the image's
# kernel already runs with the module loaded (a second run).
#
# golden-layer: driver
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=45-reboot; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

check_env GOLDEN_KERNEL is_kernel
require_env GOLDEN_MODULE_NAME is_module

if [[ -n $ROOT ]] || in_chroot; then
    log "in a chroot: no kernel of the image is running; skipping reboot"
    exit 0
fi
if ! systemd_running; then
    log "systemd is not PID 1: no kernel of the image to reboot into; skipping reboot"
    exit 0
fi

running=$(uname -r)
sysfs_name=${GOLDEN_MODULE_NAME//-/_}
loaded=''
for f in /sys/module/"$sysfs_name"/version /sys/module/nvidia/version; do
    if [[ -r $f ]]; then
        loaded=$(<"$f")
        break
    fi
done
installed=$(modinfo -k "$running" -F version "$GOLDEN_MODULE_NAME" 2>/dev/null || true)
if [[ -z ${GOLDEN_KERNEL:-} || $running == "$GOLDEN_KERNEL" ]] && [[ -n $loaded && $loaded == "$installed" ]]; then
    log "kernel $running already runs the $GOLDEN_MODULE_NAME module $loaded; no reboot needed"
    exit 0
fi

log "rebooting in 5s (running $running${GOLDEN_KERNEL:+, image kernel $GOLDEN_KERNEL})"
if command -v systemd-run >/dev/null 2>&1; then
    # A transient timer belongs to systemd, not to this SSH session, so the
    # reboot happens even though the session ends first.
    systemd-run --quiet --on-active=5 --timer-property=AccuracySec=1s \
        --unit="golden-reboot-$$" systemctl reboot
else
    nohup setsid sh -c 'sleep 5; systemctl reboot' >/dev/null 2>&1 &
fi

# shellcheck shell=bash
# systemd.sh: units, enabled live or offline (sourced by scripts/lib.sh).

# systemd_running: systemd is PID 1 of the system these commands act on.
systemd_running() {
    [[ -z $ROOT ]] && ! in_chroot && [[ -d /run/systemd/system ]]
}

# enable_unit UNIT [--now]: enable a unit (idempotent). With systemd running
# it is enabled live (and started with --now); inside a chroot, or on a tree
# under GOLDEN_ROOT, systemctl works offline on the files (--root), which is
# what `systemctl enable` needs to create the wants symlinks.
enable_unit() {
    local unit=$1 now=${2:-} state
    [[ $unit == *.* ]] || unit=$unit.service
    is_unit "$unit" || die "invalid unit name $(shown "$unit")"
    command -v systemctl >/dev/null 2>&1 || die "systemctl not found: cannot enable $unit"
    local -a sc=(systemctl)
    systemd_running || sc=(systemctl --root="${GOLDEN_ROOT}")
    state=$("${sc[@]}" is-enabled "$unit" 2>/dev/null || true)
    case $state in
        enabled | enabled-runtime | alias | indirect)
            log "unit $unit already enabled"
            ;;
        static)
            log "unit $unit is static (started by its dependencies), nothing to enable"
            ;;
        masked | masked-runtime)
            die "unit $unit is masked"
            ;;
        *)
            "${sc[@]}" enable "$unit" || die "could not enable $unit"
            log "enabled $unit"
            ;;
    esac
    if [[ $now == --now ]] && systemd_running; then
        systemctl start "$unit" || die "could not start $unit"
    fi
}

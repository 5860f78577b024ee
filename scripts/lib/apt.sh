# shellcheck shell=bash
# apt.sh: apt-get, without questions, retried where that is safe (sourced by
# scripts/lib.sh).

# policy-rc.d keeps package scripts from starting services inside the chroot
# of a local bake (there is no init to own them there). The file checks for a
# chroot itself when it runs, so even if it outlived 99-cleanup it would not
# stop services on a booted image; 99-cleanup removes it by its marker.
POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_RC_D_MARKER='# golden-policy-rc.d'

POLICY_RC_D_CHECKED=false
ensure_policy_rc_d() {
    [[ $POLICY_RC_D_CHECKED == false ]] || return 0
    POLICY_RC_D_CHECKED=true
    in_chroot || return 0
    if [[ -e $ROOT$POLICY_RC_D ]] && ! grep -qxF "$POLICY_RC_D_MARKER" "$ROOT$POLICY_RC_D"; then
        log "keeping the existing $POLICY_RC_D (not golden's)"
        return 0
    fi
    put_file 0755 "$POLICY_RC_D" <<EOF
#!/bin/sh
$POLICY_RC_D_MARKER
# Written by golden for the image build: inside a chroot no service may start
# (exit 101). Outside one (a booted image) every action is allowed.
here=\$(stat -c %d:%i / 2>/dev/null)
init=\$(stat -c %d:%i /proc/1/root/. 2>/dev/null)
if [ -z "\$here" ] || [ "\$here" != "\$init" ]; then
    exit 101
fi
exit 0
EOF
}

remove_policy_rc_d() {
    if [[ -f $ROOT$POLICY_RC_D ]] && grep -qxF "$POLICY_RC_D_MARKER" "$ROOT$POLICY_RC_D"; then
        remove_path "$POLICY_RC_D"
    fi
}

# apt_get ARGS...: apt-get without questions. Configuration files already on
# the image are kept (confold), new defaults taken (confdef); the dpkg lock is
# waited for (a booted cloud image runs apt-daily and cloud-init at first
# boot); needrestart is kept from restarting services such as sshd mid-build.
apt_get() {
    ensure_policy_rc_d
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 APT_LISTCHANGES_FRONTEND=none \
        apt-get -y -q \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 "$@"
}

# apt_retry ARGS...: apt_get, retried for transient failures (network, mirror
# sync). Only for operations that change nothing installed (update,
# --download-only): a failed dpkg run is never blindly repeated.
apt_retry() {
    local attempt
    for attempt in 1 2 3 4; do
        if apt_get "$@"; then
            return 0
        fi
        ((attempt < 4)) || break
        log "apt-get $1 failed (attempt $attempt of 4); retrying in $((attempt * 15))s"
        sleep $((attempt * 15))
    done
    die "apt-get $* failed 4 times"
}

apt_update() {
    apt_retry update
}

# apt_install [--OPTION...] SPEC...: install "name" or "name=exactversion"
# packages. The packages are downloaded first (retried), then installed in one
# dpkg run. --allow-downgrades: golden's pins (priority 1001) are
# authoritative, even where the archive carries a newer version (e.g.
# Debian's security suite).
apt_install() {
    local -a opts=()
    while (($#)) && [[ $1 == --* ]]; do
        [[ $1 =~ ^--[a-z-]+$ ]] || die "invalid apt-get option $(shown "$1")"
        opts+=("$1")
        shift
    done
    (($#)) || return 0
    local spec
    for spec in "$@"; do
        is_install_spec "$spec" || die "invalid package $(shown "$spec")"
    done
    log "installing: $*"
    apt_retry install --download-only --allow-downgrades "${opts[@]}" "$@"
    apt_get install --allow-downgrades "${opts[@]}" "$@" || die "apt-get install $* failed (see the output above)"
}

# ensure_commands CMD...: install the packages that provide missing commands.
ensure_commands() {
    local cmd missing=()
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 && continue
        case $cmd in
            curl) missing+=(curl ca-certificates) ;;
            gpg) missing+=(gnupg) ;;
            *) missing+=("$cmd") ;;
        esac
    done
    ((${#missing[@]})) || return 0
    apt_update
    apt_install "${missing[@]}"
}

# regex_escape NAME: a package name as an anchored Python regular expression
# (unattended-upgrades matches its blacklist with re.match).
regex_escape() {
    local s=$1
    s=${s//./\\.}
    s=${s//+/\\+}
    printf '^%s$' "$s"
}

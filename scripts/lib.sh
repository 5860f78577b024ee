# shellcheck shell=bash
# lib.sh: helpers shared by golden's provisioning steps (scripts/NN-name.sh).
#
# Packer uploads scripts/ to /tmp/golden/scripts/ and then runs each step from
# a temporary copy, so a step names itself and sources this file by its
# uploaded path:
#
#     GOLDEN_STEP=10-apt-pins
#     source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"
#
# golden validated every GOLDEN_* value before rendering, but a step does not
# trust its environment blindly: each value is checked again here against a
# strict pattern before it reaches a file, a command line or apt.
#
# Two variables exist for the unit tests only:
# - GOLDEN_ROOT (default /) prefixes every path a step reads or writes, so the
#   pure parts (files under /etc, release.json) can run against a scratch tree.
#   Commands (apt-get, dpkg-query, systemctl, dkms) still act on the running
#   system, so the tests put small stubs first on PATH.
# - GOLDEN_STAGE (default /tmp/golden) is where Packer uploaded scripts/ and
#   cloud-init/.

if [[ -n ${GOLDEN_LIB_LOADED:-} ]]; then
    return 0
fi
GOLDEN_LIB_LOADED=1

GOLDEN_STEP=${GOLDEN_STEP:-golden}

# ---------------------------------------------------------------- messages

# log MESSAGE...: one line on stderr, prefixed with the step.
log() {
    printf 'golden[%s]: %s\n' "$GOLDEN_STEP" "$*" >&2
}

# die MESSAGE...: log an error and stop the step (the build fails).
die() {
    printf 'golden[%s]: error: %s\n' "$GOLDEN_STEP" "$*" >&2
    exit 1
}

# shown VALUE: VALUE quoted for a message, so that a hostile value (a newline,
# an escape sequence) cannot forge log lines.
shown() {
    printf '%q' "$1"
}

# ---------------------------------------------------------------- validation
# Each is_* returns 0 when its argument has the expected form. The patterns
# exclude quotes, backslashes, whitespace and control characters, so a valid
# value is safe in apt configuration, a sources line and a JSON string.

is_pkg_name() { [[ $1 =~ ^[a-z0-9][a-z0-9+.-]+$ ]]; }
# A Debian version: optional epoch, upstream starting with a digit, revision.
is_version() { [[ $1 =~ ^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$ ]]; }
# An apt pin: a version, or a version glob such as "595.*" or "535.261.03-*".
is_pin_pattern() { [[ $1 =~ ^([0-9]+:)?[0-9][A-Za-z0-9.+~*-]*$ ]]; }
is_fingerprint() { [[ $1 =~ ^[0-9A-F]{40}$ ]]; }
is_url() { [[ $1 =~ ^(https?://[A-Za-z0-9.-]+(:[0-9]+)?|file://)(/[A-Za-z0-9._~%+,=:@/-]*)?$ ]]; }
# A kernel release: 6.8.0-1021-aws, 6.1.0-50-cloud-amd64, 6.12.48+deb13-cloud-amd64.
is_kernel() { [[ $1 =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?[A-Za-z0-9.+_~-]*$ ]]; }
is_codename() { [[ $1 =~ ^[a-z]+$ ]]; }
is_component() { [[ $1 =~ ^[a-z0-9][a-z0-9-]*$ ]]; }
# An apt suite: "/" (flat repository), a codename or a path below the URL.
is_suite() { [[ $1 == / || $1 =~ ^[a-z0-9][a-z0-9._/-]*$ ]]; }
is_unit() { [[ $1 =~ ^[A-Za-z0-9@._:-]+\.(service|path|socket|timer|target)$ ]]; }
is_service_name() { [[ $1 =~ ^[A-Za-z0-9@._:-]+$ ]]; }
is_module() { [[ $1 =~ ^[a-z0-9_-]+$ ]]; }
is_uuid() { [[ $1 =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]]; }
is_bool() { [[ $1 == true || $1 == false ]]; }
is_profile() { [[ $1 =~ ^[a-z0-9][a-z0-9._-]*$ ]]; }
is_branch() { [[ $1 =~ ^[0-9]{3}$ ]]; }
is_driver_version() { [[ $1 =~ ^[0-9]{3}\.[0-9]+(\.[0-9]+)?$ ]]; }
is_flavor() { [[ $1 == open || $1 == proprietary ]]; }
is_runtime() { [[ $1 == docker || $1 == containerd || $1 == none ]]; }
is_family() { [[ $1 == debian || $1 == ubuntu ]]; }
is_os_id() { [[ $1 =~ ^(debian|ubuntu)-[0-9]+(\.[0-9]+)?$ ]]; }
is_arch() { [[ $1 == amd64 || $1 == arm64 ]]; }
is_driver_source() { [[ $1 == nvidia || $1 == distro ]]; }
# A package to install: "name" or "name=exactversion".
is_install_spec() {
    local name=${1%%=*}
    is_pkg_name "$name" || return 1
    [[ $1 != *=* ]] || is_version "${1#*=}"
}
# A GOLDEN_PINS word: "name=pattern" or "src:name=pattern".
is_pin_entry() {
    [[ $1 == *=* ]] || return 1
    local name=${1%%=*}
    is_pkg_name "${name#src:}" && is_pin_pattern "${1#*=}"
}

# check_env VAR VALIDATOR: VAR may be empty; if set it must pass VALIDATOR.
check_env() {
    local value=${!1:-}
    if [[ -n $value ]] && ! "$2" "$value"; then
        die "$1 has an invalid value $(shown "$value") (${2#is_} expected)"
    fi
}

# require_env VAR VALIDATOR: VAR must be set and pass VALIDATOR.
require_env() {
    [[ -n ${!1:-} ]] || die "$1 is not set"
    check_env "$1" "$2"
}

# env_words ARRAY VAR VALIDATOR: split VAR's space-separated words into ARRAY,
# each checked by VALIDATOR. A newline, a tab or any other control character
# is refused outright: `read -a` would silently stop at the first newline.
env_words() {
    local -n _words_out=$1
    local value=${!2:-} word
    if [[ $value == *[[:cntrl:]]* ]]; then
        die "$2 contains a control character: $(shown "$value")"
    fi
    read -r -a _words_out <<<"$value"
    for word in "${_words_out[@]}"; do
        "$3" "$word" || die "$2 has an invalid entry $(shown "$word") (${3#is_} expected)"
    done
}

# words_to_array ARRAY STRING: split an already trusted STRING on spaces.
words_to_array() {
    local -n _arr_out=$1
    [[ $2 != *[[:cntrl:]]* ]] || die "control character in $(shown "$2")"
    read -r -a _arr_out <<<"$2"
}

# spec_name SPEC: the package name of "name" or "name=version".
spec_name() {
    printf '%s\n' "${1%%=*}"
}

# upstream_version VERSION: the upstream part of a Debian version
# ("1:580.95.05-1ubuntu1" -> "580.95.05").
upstream_version() {
    local v=${1#*:}
    printf '%s\n' "${v%-*}"
}

# ---------------------------------------------------------------- the target tree

GOLDEN_STAGE=${GOLDEN_STAGE:-/tmp/golden}
[[ $GOLDEN_STAGE =~ ^/[A-Za-z0-9._/-]*$ ]] || die "GOLDEN_STAGE is not a plain absolute path: $(shown "$GOLDEN_STAGE")"
GOLDEN_ROOT=${GOLDEN_ROOT:-/}
[[ $GOLDEN_ROOT =~ ^/[A-Za-z0-9._/-]*$ ]] || die "GOLDEN_ROOT is not a plain absolute path: $(shown "$GOLDEN_ROOT")"
# ROOT is the prefix for every path on the image: "" for the real root.
ROOT=${GOLDEN_ROOT%/}

# in_chroot: true when / is not PID 1's root, i.e. this runs inside a chroot
# (the local bake's sshd runs in one). Without /proc, or without access to PID
# 1's root, there is no telling: assume a chroot, the cautious answer (no
# reboot, no service started).
in_chroot() {
    local here init
    here=$(stat -c %d:%i / 2>/dev/null) || return 0
    init=$(stat -c %d:%i /proc/1/root/. 2>/dev/null) || return 0
    [[ $here != "$init" ]]
}

# systemd_running: systemd is PID 1 of the system these commands act on.
systemd_running() {
    [[ -z $ROOT ]] && ! in_chroot && [[ -d /run/systemd/system ]]
}

# ---------------------------------------------------------------- files

# put_file MODE DEST < CONTENT: write DEST (a path on the image) atomically
# when its content or mode differs; log "unchanged" otherwise. Sets
# PUT_CHANGED to true or false for callers that react to a change.
# shellcheck disable=SC2034  # read by the steps that source this file
PUT_CHANGED=false
put_file() {
    local mode=$1 dest=$ROOT$2 tmp
    install -d -m 0755 "$(dirname "$dest")"
    tmp=$(mktemp "$(dirname "$dest")/.golden.XXXXXX")
    if ! cat >"$tmp"; then
        rm -f "$tmp"
        die "could not write $2"
    fi
    if [[ -f $dest && ! -L $dest ]] && cmp -s "$tmp" "$dest" \
        && [[ $(stat -c %a "$dest") == "${mode#0}" ]]; then
        rm -f "$tmp"
        # shellcheck disable=SC2034  # read by the steps that source this file
        PUT_CHANGED=false
        log "unchanged $2"
        return 0
    fi
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$dest"
    # shellcheck disable=SC2034  # read by the steps that source this file
    PUT_CHANGED=true
    log "wrote $2"
}

# put_copy MODE SRC DEST: install the file SRC (on this machine) as DEST (on
# the image), only when it differs.
put_copy() {
    [[ -f $2 ]] || die "missing file $2"
    put_file "$1" "$3" <"$2"
}

# remove_path PATH: remove a file on the image if present, logging it.
remove_path() {
    if [[ -e $ROOT$1 || -L $ROOT$1 ]]; then
        rm -f "$ROOT$1"
        log "removed $1"
    fi
}

# ---------------------------------------------------------------- apt

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

# ---------------------------------------------------------------- dpkg

# installed_packages: one line per installed package:
# "binary<TAB>name<TAB>source<TAB>version". binary carries an architecture
# qualifier for Multi-Arch: same packages (libc6:amd64); source is the source
# package (dpkg leaves ${source:Package} empty on some versions when it equals
# the package name, so that case is filled in here).
installed_packages() {
    local status binary name source version
    # "|" separates the fields: a tab is whitespace to `read`, which would
    # merge an empty field into the next. No name or version holds a "|".
    # shellcheck disable=SC2016  # ${...} are dpkg-query fields, not shell expansions
    dpkg-query -W -f='${db:Status-Abbrev}|${binary:Package}|${Package}|${source:Package}|${Version}\n' |
        while IFS='|' read -r status binary name source version; do
            [[ $status == [ih]i* ]] || continue
            printf '%s\t%s\t%s\t%s\n' "$binary" "$name" "${source:-$name}" "$version"
        done
}

# pkg_version NAME: the installed version of NAME, or nothing.
pkg_version() {
    local binary name source version
    while IFS=$'\t' read -r binary name source version; do
        if [[ $name == "$1" || $binary == "$1" ]]; then
            printf '%s\n' "$version"
            return 0
        fi
    done < <(installed_packages)
}

# packages_from_sources SOURCE...: installed binary packages built from any of
# the given source packages.
packages_from_sources() {
    local binary name source version want
    while IFS=$'\t' read -r binary name source version; do
        for want in "$@"; do
            if [[ $source == "$want" ]]; then
                printf '%s\n' "$binary"
                break
            fi
        done
    done < <(installed_packages)
}

# hold_packages NAME...: apt-mark hold the packages not held yet.
hold_packages() {
    (($#)) || return 0
    local held=() todo=() name
    # showhold prints native packages without their architecture
    # (libnvidia-ml1, not libnvidia-ml1:amd64): compare bare names.
    mapfile -t held < <(apt-mark showhold | sed 's/:.*//')
    for name in "$@"; do
        if printf '%s\n' "${held[@]}" "${todo[@]%%:*}" | grep -qxF "${name%%:*}"; then
            continue
        fi
        todo+=("$name")
    done
    if ((${#todo[@]} == 0)); then
        log "holds unchanged ($# packages already held)"
        return 0
    fi
    apt-mark hold "${todo[@]}" >/dev/null
    log "held: ${todo[*]}"
}

# ---------------------------------------------------------------- kernels

# image_kernels: kernel releases with an image in /boot (symlinks such as
# /boot/vmlinuz or vmlinuz.old are not kernels of their own).
image_kernels() {
    local f k
    for f in "$ROOT"/boot/vmlinuz-*; do
        [[ -f $f && ! -L $f ]] || continue
        k=${f##*/vmlinuz-}
        if is_kernel "$k"; then
            printf '%s\n' "$k"
        fi
    done
}

# has_abi NAME: the package name carries a full kernel release (6.8.0-1021,
# 6.1.0-50, 6.12.48+deb13); metapackages such as linux-aws,
# linux-image-cloud-amd64 or linux-generic-hwe-24.04 do not.
has_abi() {
    [[ $1 =~ -[0-9]+\.[0-9]+\.[0-9]+([-+]|$) ]]
}

# kernel_metapackages: installed packages that track "the newest kernel":
# linux-* without an ABI in the name that are linux-image-/-headers-/-modules-
# themselves or depend on one. linux-base, linux-firmware, linux-kbuild-6.1 or
# linux-tools-common depend on none and are left alone.
kernel_metapackages() {
    local name depends
    # shellcheck disable=SC2016  # ${...} are dpkg-query fields
    while IFS='|' read -r name depends; do
        [[ $name == linux-* ]] || continue
        has_abi "$name" && continue
        if [[ $name =~ ^linux-(image|headers|modules)- ]] ||
            [[ $depends =~ (^|[ ,|])linux-(image|headers|modules)- ]]; then
            printf '%s\n' "$name"
        fi
    done < <(dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${Depends}\n' 'linux-*' 2>/dev/null |
        awk -F'|' '$1 ~ /^[ih]i/ { print $2 "|" $3 }')
}

# stray_kernel_headers: linux-headers-K packages for which the image has no
# kernel K (pulled in by a headers metapackage). DKMS would build for them.
stray_kernel_headers() {
    local d k
    for d in "$ROOT"/lib/modules/*/; do
        k=${d%/}
        k=${k##*/}
        [[ -e $d/build && ! -f $ROOT/boot/vmlinuz-$k ]] || continue
        if [[ -n $(pkg_version "linux-headers-$k") ]]; then
            printf '%s\n' "linux-headers-$k"
        fi
    done
}

# remove_only PKG...: remove exactly these packages. apt simulates first; if
# the removal would take anything else along (a kernel, a package depending on
# them), nothing is removed and the step stops.
remove_only() {
    (($#)) || return 0
    local -a removed
    local pkg
    mapfile -t removed < <(apt_get -s remove "$@" | awk '$1 == "Remv" { print $2 }')
    for pkg in "${removed[@]}"; do
        if ! printf '%s\n' "$@" | grep -qxF "$pkg"; then
            die "removing $* would also remove $pkg"
        fi
    done
    apt_get remove "$@" || die "could not remove $*"
}

# ---------------------------------------------------------------- systemd

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

# ---------------------------------------------------------------- JSON
# The json_* helpers set J (never print) so that a refused value stops the
# step: a `die` inside a command substitution would only end the subshell.

# json_str VALUE: J = VALUE as a JSON string. Only values of a known-safe form
# are accepted (no quotes, backslashes or control characters), so no escaping
# is needed; anything else stops the step.
json_str() {
    [[ $1 =~ ^[A-Za-z0-9\ ._:+~/@,=()*-]*$ ]] || die "refusing to write $(shown "$1") into JSON"
    J="\"$1\""
}

# json_opt VALUE: J = json_str VALUE, or null when VALUE is empty.
json_opt() {
    if [[ -z $1 ]]; then
        J=null
    else
        json_str "$1"
    fi
}

# json_list VALUE...: J = a JSON array of strings.
json_list() {
    local acc='' sep='' v
    for v in "$@"; do
        json_str "$v"
        acc+=$sep$J
        sep=', '
    done
    J="[$acc]"
}

# regex_escape NAME: a package name as an anchored Python regular expression
# (unattended-upgrades matches its blacklist with re.match).
regex_escape() {
    local s=$1
    s=${s//./\\.}
    s=${s//+/\\+}
    printf '^%s$' "$s"
}

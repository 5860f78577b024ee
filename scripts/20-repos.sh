#!/usr/bin/env bash
# 20-repos: the package sources: the OS archive (a mirror, or the image's own
# sources with the components the profile needs), NVIDIA's CUDA repository and
# the container toolkit repository, each signed by a key whose fingerprint is
# checked against the profile. Then apt-get update.
#
# Reads GOLDEN_OS_FAMILY, GOLDEN_OS_CODENAME, GOLDEN_OS_COMPONENTS,
# GOLDEN_OS_MIRROR and, for PREFIX in GOLDEN_CUDA_REPO / GOLDEN_CTK_REPO:
# PREFIX_URL, PREFIX_SUITE ("/" for a flat repository), PREFIX_COMPONENTS,
# PREFIX_KEY_URL, PREFIX_FINGERPRINT.
#
# golden-layer: base
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=20-repos; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

require_env GOLDEN_OS_FAMILY is_family
require_env GOLDEN_OS_CODENAME is_codename
check_env GOLDEN_OS_MIRROR is_url
os_components=()
env_words os_components GOLDEN_OS_COMPONENTS is_component
((${#os_components[@]})) || os_components=(main)
family=$GOLDEN_OS_FAMILY
codename=$GOLDEN_OS_CODENAME

# The NVIDIA repositories: name -> environment prefix. All their values are
# checked before anything is written.
declare -A repo_prefix=([cuda]=GOLDEN_CUDA_REPO [container-toolkit]=GOLDEN_CTK_REPO)
repos=()
for name in cuda container-toolkit; do
    prefix=${repo_prefix[$name]}
    url_var=${prefix}_URL
    check_env "$url_var" is_url
    [[ -n ${!url_var:-} ]] || continue
    require_env "${prefix}_SUITE" is_suite
    require_env "${prefix}_KEY_URL" is_url
    require_env "${prefix}_FINGERPRINT" is_fingerprint
    _components=()
    env_words _components "${prefix}_COMPONENTS" is_component
    suite_var=${prefix}_SUITE
    if [[ ${!suite_var} != / ]] && ((${#_components[@]} == 0)); then
        die "${prefix}_COMPONENTS is empty but ${prefix}_SUITE is not a flat repository (/)"
    fi
    repos+=("$name")
done

# ---------------------------------------------------------------- OS sources

# The suites of the OS archive itself: CODENAME, CODENAME-updates,
# CODENAME-security (or CODENAME/updates), CODENAME-backports. Third-party
# repositories with the codename as their suite (Docker's, for one) are told
# apart by their components: only stanzas that carry "main" are touched.
# shellcheck disable=SC2016  # an awk program, not shell
awk_common='
function os_suite(s) {
    return s ~ ("^" codename "([-/](updates|security|backports|proposed-updates|proposed))?$")
}
function any_os_suite(s,    n, a, i) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) if (os_suite(a[i])) return 1
    return 0
}
function has(s, w,    n, a, i) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) if (a[i] == w) return 1
    return 0
}
function widen(c,    n, w, i) {
    n = split(want, w, " ")
    for (i = 1; i <= n; i++) if (!has(c, w[i])) c = c " " w[i]
    return c
}
'

# deb822 (.sources): rewrite the Components field of OS stanzas; a field
# folded over several lines is left alone.
# shellcheck disable=SC2016  # an awk program, not shell
awk_deb822='
function flush(    i) {
    if (ci && !cmulti && any_os_suite(suites) && has(comps, "main")) {
        c = widen(comps)
        if (c != comps) buf[ci] = ckey ": " c
    }
    for (i = 1; i <= nb; i++) print buf[i]
    nb = 0; ci = 0; cmulti = 0; suites = ""; comps = ""; last = ""
}
/^[ \t]*$/ { flush(); print; next }
/^#/ { buf[++nb] = $0; next }
/^[ \t]/ {
    buf[++nb] = $0
    if (last == "components") cmulti = 1
    if (last == "suites") suites = suites " " $0
    next
}
{
    buf[++nb] = $0
    i = index($0, ":")
    if (i == 0) { last = ""; next }
    key = substr($0, 1, i - 1)
    val = substr($0, i + 1)
    sub(/^[ \t]+/, "", val)
    sub(/[ \t]+$/, "", val)
    last = tolower(key)
    if (last == "suites") suites = val
    else if (last == "components") { ci = nb; ckey = key; comps = val }
}
END { flush() }
'

# One-line format (.list): "deb [options] URI SUITE COMPONENT...". The file is
# read twice: first to learn which components each (type, URI, suite) already
# has on any line (Ubuntu 22.04 lists universe and multiverse on lines of
# their own), then to add only the missing ones to the line with "main".
# shellcheck disable=SC2016  # an awk program, not shell
awk_oneline='
function parse(line) {
    if (line !~ /^[ \t]*deb(-src)?[ \t]/ || index(line, "#") != 0) return 0
    if (match(line, /\[[^]]*\]/)) {
        head = substr(line, 1, RSTART + RLENGTH - 1); rest = substr(line, RSTART + RLENGTH)
    } else {
        match(line, /^[ \t]*deb(-src)?/)
        head = substr(line, 1, RLENGTH); rest = substr(line, RLENGTH + 1)
    }
    n = split(rest, f, " ")
    if (n < 3) return 0
    split(head, t, " ")
    uri = f[1]
    sub(/\/+$/, "", uri)
    key = t[1] SUBSEP uri SUBSEP f[2]
    comps = ""
    for (i = 3; i <= n; i++) comps = comps " " f[i]
    return 1
}
FNR == NR {
    if (parse($0)) for (i = 3; i <= n; i++) seen[key, f[i]] = 1
    next
}
{
    if (parse($0) && os_suite(f[2]) && has(comps, "main")) {
        c = comps
        m = split(want, w, " ")
        for (j = 1; j <= m; j++) if (!((key, w[j]) in seen)) { c = c " " w[j]; seen[key, w[j]] = 1 }
        if (c != comps) { print head " " f[1] " " f[2] c; next }
    }
    print
}
'

# widen_components FILE: make the OS entries of FILE (a path on the image)
# carry every component of GOLDEN_OS_COMPONENTS, keeping the mirror.
widen_components() {
    local file=$1 program
    case $file in
        *.sources) program=$awk_common$awk_deb822 ;;
        *) program=$awk_common$awk_oneline ;;
    esac
    local -a inputs=("$ROOT$file")
    [[ $file == *.sources ]] || inputs+=("$ROOT$file")
    put_file 0644 "$file" < <(awk -v codename="$codename" -v want="${os_components[*]}" \
        "$program" "${inputs[@]}")
}

# os_source_files: the image's apt source files, golden's own excepted.
os_source_files() {
    local f
    [[ -f $ROOT/etc/apt/sources.list ]] && printf '%s\n' /etc/apt/sources.list
    for f in "$ROOT"/etc/apt/sources.list.d/*.list "$ROOT"/etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        case ${f##*/} in golden-*) continue ;; esac
        printf '%s\n' "${f#"$ROOT"}"
    done
}

# disable_source FILE WHY: rename FILE (on the image) to FILE.disabled, a name
# apt ignores silently.
disable_source() {
    mv -f "$ROOT$1" "$ROOT$1.disabled"
    log "disabled $1 ($2)"
}

if [[ -n ${GOLDEN_OS_MIRROR:-} ]]; then
    suites="$codename $codename-updates"
    if [[ $family == ubuntu ]]; then
        suites+=" $codename-security"
    else
        # Debian's security suite lives in a separate archive (debian-security),
        # which a single mirror URL does not name.
        log "Debian security updates come from $GOLDEN_OS_MIRROR only if it carries $codename-security"
    fi
    put_file 0644 /etc/apt/sources.list.d/golden-os.sources <<EOF
# Written by golden: the OS archive from the profile's mirror.
Types: deb
URIs: $GOLDEN_OS_MIRROR
Suites: $suites
Components: ${os_components[*]}
EOF
    # The image's own OS sources would bypass the mirror.
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/debian.sources \
        /etc/apt/sources.list.d/ubuntu.sources; do
        if [[ -f $ROOT$f ]] && grep -Eq '^[[:space:]]*(deb|Types:)' "$ROOT$f"; then
            disable_source "$f" "replaced by the mirror $GOLDEN_OS_MIRROR"
        fi
    done
else
    mapfile -t files < <(os_source_files)
    ((${#files[@]})) || die "the image has no apt sources and GOLDEN_OS_MIRROR is not set"
    for f in "${files[@]}"; do
        widen_components "$f"
    done
fi

# ---------------------------------------------------------------- NVIDIA repositories

# fetch URL DEST: download URL (https, http or file) to DEST on this machine.
fetch() {
    case $1 in
        file://*)
            cp -- "${1#file://}" "$2" || die "could not read $1"
            return 0
            ;;
    esac
    command -v curl >/dev/null 2>&1 || command -v wget >/dev/null 2>&1 || ensure_commands curl
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --proto '=https,http' --retry 3 --retry-delay 5 --max-time 120 -o "$2" -- "$1" ||
            die "could not download $1"
    else
        wget -q --tries=3 --timeout=120 -O "$2" -- "$1" || die "could not download $1"
    fi
}

# verified_keyring NAME KEY_URL FINGERPRINT DEST: download the signing key,
# check it is exactly one key with the expected fingerprint, neither revoked
# nor expired, and write it dearmored to DEST (a path on the image).
verified_keyring() {
    local name=$1 url=$2 want=$3 dest=$4 tmp home
    local type validity f10 pubs=0 got='' state='' take=0
    ensure_commands gpg
    tmp=$(mktemp -d)
    # A scratch GNUPGHOME: the image's (root's) keyrings are neither read nor changed.
    home=$tmp/gnupg
    install -d -m 0700 "$home"
    fetch "$url" "$tmp/key"
    if ! gpg --batch --no-tty --quiet --homedir "$home" --import "$tmp/key" 2>"$tmp/err"; then
        sed 's/^/  /' "$tmp/err" >&2
        rm -rf "$tmp"
        die "the $name signing key at $url is not an OpenPGP key"
    fi
    while IFS=: read -r type validity _ _ _ _ _ _ _ f10 _; do
        case $type in
            pub)
                pubs=$((pubs + 1))
                state=$validity
                take=1
                ;;
            fpr)
                if ((take)); then
                    got=$f10
                    take=0
                fi
                ;;
            sub | uid | uat) take=0 ;;
        esac
    done < <(gpg --batch --no-tty --homedir "$home" --with-colons --fixed-list-mode --list-keys 2>/dev/null)
    if ((pubs != 1)); then
        gpgconf --homedir "$home" --kill all >/dev/null 2>&1 || true
        rm -rf "$tmp"
        die "the $name signing key file at $url holds $pubs keys; expected exactly one"
    fi
    if [[ $got != "$want" ]]; then
        gpgconf --homedir "$home" --kill all >/dev/null 2>&1 || true
        rm -rf "$tmp"
        die "signing key fingerprint mismatch: expected $want, got ${got:-nothing} ($name, $url)"
    fi
    case $state in
        r)
            rm -rf "$tmp"
            die "the $name signing key $got is revoked"
            ;;
        e)
            rm -rf "$tmp"
            die "the $name signing key $got has expired"
            ;;
    esac
    gpg --batch --no-tty --homedir "$home" --export "$got" >"$tmp/keyring" ||
        die "could not export the $name signing key"
    put_copy 0644 "$tmp/keyring" "$dest"
    gpgconf --homedir "$home" --kill all >/dev/null 2>&1 || true
    rm -rf "$tmp"
    log "$name signing key $got verified"
}

for name in "${repos[@]}"; do
    prefix=${repo_prefix[$name]}
    url_var=${prefix}_URL suite_var=${prefix}_SUITE key_var=${prefix}_KEY_URL fpr_var=${prefix}_FINGERPRINT
    components=()
    env_words components "${prefix}_COMPONENTS" is_component
    url=${!url_var}
    suite=${!suite_var}
    keyring=/usr/share/keyrings/golden-$name.gpg
    verified_keyring "$name" "${!key_var}" "${!fpr_var}" "$keyring"
    if [[ $suite == / ]]; then
        line="deb [signed-by=$keyring] ${url%/}/ /"
    else
        line="deb [signed-by=$keyring] $url $suite ${components[*]}"
    fi
    # Another source for the same repository (cuda-keyring's list, a base
    # image's own) would give apt two Signed-By values for one URL: an error.
    for f in "$ROOT"/etc/apt/sources.list.d/*.list "$ROOT"/etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        case ${f##*/} in golden-*) continue ;; esac
        if grep -v '^[[:space:]]*#' "$f" | grep -qF -- "${url%/}"; then
            disable_source "${f#"$ROOT"}" "golden configures $url with its verified key"
        fi
    done
    put_file 0644 "/etc/apt/sources.list.d/golden-$name.list" <<EOF
# Written by golden: the $name repository, signed by ${!fpr_var}.
$line
EOF
done

apt_update

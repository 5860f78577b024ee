# shellcheck shell=bash
# validate.sh: the forms of the GOLDEN_* values, and the readers that check
# them (sourced by scripts/lib.sh).
#
# golden/contract.py is the owner of the contract: it names, for every
# GOLDEN_* variable, its layer and which is_* below checks it, and its unit
# test runs these validators against the Python side's forms and enums.
#
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
is_serial() { [[ $1 =~ ^[0-9A-F]{1,40}$ ]]; }
is_uuid() { [[ $1 =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]]; }
is_bool() { [[ $1 == true || $1 == false ]]; }
is_profile() { [[ $1 =~ ^[a-z0-9][a-z0-9._-]*$ ]]; }
is_branch() { [[ $1 =~ ^[0-9]{3}$ ]]; }
is_driver_version() { [[ $1 =~ ^[0-9]{3}\.[0-9]+(\.[0-9]+)?$ ]]; }
# A plain absolute path (GOLDEN_STAGE, GOLDEN_ROOT).
is_abs_path() { [[ $1 =~ ^/[A-Za-z0-9._/-]*$ ]]; }
is_user_name() { [[ $1 =~ ^[a-z_][a-z0-9_-]{0,31}$ ]]; }

# The enums: exactly the values of golden/profile.py's StrEnums (Flavor,
# Runtime, DriverSource, OsName, Arch; the family is an OsName's first part).
is_flavor() { [[ $1 == open || $1 == proprietary ]]; }
is_runtime() { [[ $1 == docker || $1 == containerd || $1 == none ]]; }
is_family() { [[ $1 == debian || $1 == ubuntu ]]; }
is_os_id() { [[ $1 == debian-12 || $1 == debian-13 || $1 == ubuntu-22.04 || $1 == ubuntu-24.04 ]]; }
is_arch() { [[ $1 == amd64 || $1 == arm64 ]]; }
is_driver_source() { [[ $1 == nvidia || $1 == distro ]]; }
is_cuda_source() { [[ $1 == nvidia || $1 == distro ]]; }
is_cuda_release() { [[ $1 =~ ^[0-9]{1,2}\.[0-9]{1,2}$ ]]; }
is_gpu_arch() { [[ $1 =~ ^sm_[0-9]{2,3}[a-z]?$ ]]; }
is_data_fs() { [[ $1 == ext4 || $1 == xfs ]]; }
# An NVMe model string, trimmed: "Amazon EC2 NVMe Instance Storage" (spaces inside only).
is_nvme_model() { [[ $1 =~ ^[A-Za-z0-9]([A-Za-z0-9\ ._-]{0,38}[A-Za-z0-9._-])?$ ]]; }

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

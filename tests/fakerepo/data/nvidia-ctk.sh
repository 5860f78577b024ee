#!/bin/sh
# nvidia-ctk look-alike for golden's integration tests (NOT NVIDIA's program).
#
# It answers the commands golden's scripts and verification run, with the real
# tool's output format: --version, runtime configure (docker, containerd),
# cdi generate, cdi list, config --in-place. POSIX sh only, because a minimal
# Debian image has no python or jq; the JSON merge is therefore textual.
#
# Filled in by tests/fakerepo when the package is built:
#   PKG_VERSION       the package's upstream version
#   REPORTED_VERSION  what --version prints (differs from PKG_VERSION to plant "toolkit drift")
#   WRITES_RUNTIME    "false" to plant "the nvidia runtime is missing from the runtime config"
set -eu

PKG_VERSION='@PKG_VERSION@'
REPORTED_VERSION='@REPORTED_VERSION@'
COMMIT='@COMMIT@'
WRITES_RUNTIME='@WRITES_RUNTIME@'
CDI_SPEC_VERSION='0.5.0'

QUIET=false

# logrus prints "INFO[0000] msg" on a terminal and key=value lines otherwise.
log() {
    level=$1
    shift
    [ "$QUIET" = true ] && [ "$level" = info ] && return 0
    if [ -t 2 ]; then
        tag=$(printf '%s' "$level" | cut -c1-4 | tr '[:lower:]' '[:upper:]')
        printf '%s[0000] %s\n' "$tag" "$*" >&2
    else
        msg=$(printf '%s' "$*" | sed 's/"/\\"/g')
        printf 'time="%s" level=%s msg="%s"\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$level" "$msg" >&2
    fi
}

die() {
    log error "$*"
    exit 1
}

usage_error() {
    printf 'Incorrect Usage: %s\n' "$*" >&2
    exit 1
}

usage() {
    printf 'NAME:\n   NVIDIA Container Toolkit CLI - Tools to configure the NVIDIA Container Toolkit\n'
    printf '\nCOMMANDS:\n   runtime configure, cdi generate, cdi list, config (look-alike subset)\n'
}

print_version() {
    printf 'NVIDIA Container Toolkit CLI version %s\n' "$REPORTED_VERSION"
    printf 'commit: %s\n' "$COMMIT"
}

# Values end up inside sed replacements and JSON strings: keep them plain.
check_word() {
    case $2 in
        '' | *[!A-Za-z0-9._/-]*) usage_error "invalid value for $1: '$2'" ;;
    esac
}

write_file() {
    # write_file PATH: stdin to PATH, creating its directory, replacing it atomically.
    mkdir -p "$(dirname "$1")"
    cat > "$1.tmp.$$"
    mv -f "$1.tmp.$$" "$1"
}

# --- docker -------------------------------------------------------------------

docker_fresh() {
    # The layout json.MarshalIndent gives: sorted keys, four-space indent.
    first=true
    member() {
        if [ "$first" = true ]; then first=false; else printf ',\n'; fi
    }
    printf '{\n'
    if [ "$SET_DEFAULT" = true ]; then
        member
        printf '    "default-runtime": "%s"' "$RUNTIME_NAME"
    fi
    if [ "$CDI_ENABLED" = true ]; then
        member
        printf '    "features": {\n        "cdi": true\n    }'
    fi
    if [ "$WRITES_RUNTIME" = true ]; then
        member
        printf '    "runtimes": {\n        "%s": {\n            "args": [],\n' "$RUNTIME_NAME"
        printf '            "path": "%s"\n        }\n    }' "$RUNTIME_PATH"
    fi
    [ "$first" = true ] || printf '\n'
    printf '}\n'
}

docker_merge() {
    # Edits a one-line copy of an existing daemon.json. JSON strings cannot hold
    # raw newlines, so joining the lines keeps it valid; the result is valid
    # JSON on one line (the real tool re-indents it).
    body=$(tr -d '\n' < "$1")
    entry="\"$RUNTIME_NAME\": {\"args\": [], \"path\": \"$RUNTIME_PATH\"}"
    if [ "$WRITES_RUNTIME" = true ]; then
        if printf '%s' "$body" | grep -q '"runtimes"[[:space:]]*:[[:space:]]*{'; then
            if ! printf '%s' "$body" | grep -q "\"$RUNTIME_NAME\"[[:space:]]*:[[:space:]]*{"; then
                body=$(printf '%s' "$body" \
                    | sed "s|\"runtimes\"[[:space:]]*:[[:space:]]*{|&$entry,|")
            fi
        else
            body=$(printf '%s' "$body" | sed "s|{|{\"runtimes\": {$entry},|")
        fi
    fi
    if [ "$SET_DEFAULT" = true ]; then
        if printf '%s' "$body" | grep -q '"default-runtime"'; then
            body=$(printf '%s' "$body" \
                | sed "s|\"default-runtime\"[[:space:]]*:[[:space:]]*\"[^\"]*\"|\"default-runtime\": \"$RUNTIME_NAME\"|")
        else
            body=$(printf '%s' "$body" | sed "s|{|{\"default-runtime\": \"$RUNTIME_NAME\",|")
        fi
    fi
    if [ "$CDI_ENABLED" = true ]; then
        if printf '%s' "$body" | grep -q '"cdi"[[:space:]]*:'; then
            body=$(printf '%s' "$body" | sed 's|"cdi"[[:space:]]*:[[:space:]]*false|"cdi": true|')
        elif printf '%s' "$body" | grep -q '"features"[[:space:]]*:[[:space:]]*{'; then
            body=$(printf '%s' "$body" | sed 's|"features"[[:space:]]*:[[:space:]]*{|&"cdi": true,|')
        else
            body=$(printf '%s' "$body" | sed 's|{|{"features": {"cdi": true},|')
        fi
    fi
    # An insertion into an empty object leaves ",}": drop the comma.
    printf '%s\n' "$body" | sed 's|,[[:space:]]*}|}|g'
}

configure_docker() {
    cfg=${CONFIG:-/etc/docker/daemon.json}
    if [ -f "$cfg" ] && tr -d ' \t\n' < "$cfg" | grep -q '[^{}]'; then
        log info "Loading config from $cfg"
        new=$(docker_merge "$cfg")
    else
        log info "Config file does not exist; using empty config"
        new=$(docker_fresh)
    fi
    if [ "$DRY_RUN" = true ]; then
        printf '%s\n' "$new"
        return 0
    fi
    printf '%s\n' "$new" | write_file "$cfg"
    log info "Wrote updated config to $cfg"
    log info "It is recommended that docker daemon be restarted."
}

# --- containerd ---------------------------------------------------------------

containerd_dropin() {
    plugin='plugins."io.containerd.grpc.v1.cri"'
    printf 'version = 2\n'
    if [ "$WRITES_RUNTIME" = true ] || [ "$CDI_ENABLED" = true ]; then
        printf '\n[plugins]\n\n  [%s]\n' "$plugin"
        [ "$CDI_ENABLED" = true ] && printf '    enable_cdi = true\n'
    fi
    if [ "$WRITES_RUNTIME" = true ]; then
        printf '\n    [%s.containerd]\n' "$plugin"
        [ "$SET_DEFAULT" = true ] && printf '      default_runtime_name = "%s"\n' "$RUNTIME_NAME"
        printf '\n      [%s.containerd.runtimes]\n' "$plugin"
        printf '\n        [%s.containerd.runtimes.%s]\n' "$plugin" "$RUNTIME_NAME"
        printf '          privileged_without_host_devices = false\n'
        printf '          runtime_engine = ""\n'
        printf '          runtime_root = ""\n'
        printf '          runtime_type = "io.containerd.runc.v2"\n'
        printf '\n          [%s.containerd.runtimes.%s.options]\n' "$plugin" "$RUNTIME_NAME"
        case $RUNTIME_PATH in
            /*) binary=$RUNTIME_PATH ;;
            *) binary=/usr/bin/$RUNTIME_PATH ;;
        esac
        printf '            BinaryName = "%s"\n' "$binary"
    fi
}

configure_containerd() {
    cfg=${CONFIG:-/etc/containerd/config.toml}
    dropin=${DROP_IN:-/etc/containerd/conf.d/99-nvidia.toml}
    imports="imports = [\"$(dirname "$dropin")/*.toml\"]"
    if [ -f "$cfg" ]; then
        log info "Loading config from $cfg"
    else
        log info "Config file does not exist; using empty config"
    fi
    log info "Using config version 2"
    log info "Using CRI runtime plugin name \"io.containerd.grpc.v1.cri\""
    if [ "$DRY_RUN" = true ]; then
        containerd_dropin
        return 0
    fi
    containerd_dropin | write_file "$dropin"
    # The top-level config must import the drop-in directory for it to count.
    if [ ! -f "$cfg" ]; then
        printf '%s\nversion = 2\n' "$imports" | write_file "$cfg"
    elif ! grep -q '^[[:space:]]*imports[[:space:]]*=' "$cfg"; then
        { printf '%s\n' "$imports"; cat "$cfg"; } | write_file "$cfg"
    fi
    log info "Wrote updated config to $dropin"
    log info "It is recommended that containerd daemon be restarted."
}

runtime_configure() {
    RUNTIME=docker CONFIG='' DROP_IN='' DRY_RUN=false SET_DEFAULT=false CDI_ENABLED=false
    RUNTIME_NAME=nvidia RUNTIME_PATH=nvidia-container-runtime
    while [ $# -gt 0 ]; do
        case $1 in
            --runtime=*) RUNTIME=${1#*=} ;;
            --runtime) RUNTIME=${2:?}; shift ;;
            --config=*) CONFIG=${1#*=} ;;
            --config) CONFIG=${2:?}; shift ;;
            --drop-in-config=*) DROP_IN=${1#*=} ;;
            --drop-in-config) DROP_IN=${2:?}; shift ;;
            --nvidia-runtime-name=*) RUNTIME_NAME=${1#*=} ;;
            --nvidia-runtime-name) RUNTIME_NAME=${2:?}; shift ;;
            --nvidia-runtime-path=*) RUNTIME_PATH=${1#*=} ;;
            --nvidia-runtime-path) RUNTIME_PATH=${2:?}; shift ;;
            --set-as-default | --set-as-default=true) SET_DEFAULT=true ;;
            --set-as-default=false) SET_DEFAULT=false ;;
            --cdi.enabled | --cdi.enabled=true | --enable-cdi) CDI_ENABLED=true ;;
            --cdi.enabled=false) CDI_ENABLED=false ;;
            --dry-run) DRY_RUN=true ;;
            *) usage_error "flag provided but not defined: $1" ;;
        esac
        shift
    done
    check_word --nvidia-runtime-name "$RUNTIME_NAME"
    check_word --nvidia-runtime-path "$RUNTIME_PATH"
    case $RUNTIME in
        docker) configure_docker ;;
        containerd) configure_containerd ;;
        *) die "unable to load config for runtime $RUNTIME: unrecognized runtime '$RUNTIME'" ;;
    esac
}

# --- CDI ----------------------------------------------------------------------

cdi_spec() {
    # A spec of the shape `nvidia-ctk cdi generate` writes, without a GPU to describe.
    printf -- '---\ncdiVersion: %s\n' "$CDI_SPEC_VERSION"
    printf 'containerEdits:\n  deviceNodes:\n  - path: /dev/nvidiactl\n'
    printf '  - path: /dev/nvidia-uvm\n  - path: /dev/nvidia-uvm-tools\n'
    printf 'devices:\n'
    for name in '"0"' all; do
        printf -- '- containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\n'
        printf '  name: %s\n' "$name"
    done
    printf 'kind: nvidia.com/gpu\n'
}

cdi_generate() {
    output=${NVIDIA_CTK_CDI_OUTPUT_FILE_PATH:-}
    while [ $# -gt 0 ]; do
        case $1 in
            --output=*) output=${1#*=} ;;
            --output) output=${2:?}; shift ;;
            --format=yaml | --device-name-strategy=*) ;;
            --format | --device-name-strategy) shift ;;
            *) usage_error "flag provided but not defined: $1" ;;
        esac
        shift
    done
    log info "Generated CDI spec with version $CDI_SPEC_VERSION"
    if [ -z "$output" ]; then
        cdi_spec
    else
        cdi_spec | write_file "$output"
    fi
}

cdi_list() {
    dirs=''
    while [ $# -gt 0 ]; do
        case $1 in
            --spec-dir=*) dirs="$dirs ${1#*=}" ;;
            --spec-dir) dirs="$dirs ${2:?}"; shift ;;
            *) usage_error "flag provided but not defined: $1" ;;
        esac
        shift
    done
    [ -n "$dirs" ] || dirs='/etc/cdi /var/run/cdi'
    devices=''
    for dir in $dirs; do
        for spec in "$dir"/*.yaml "$dir"/*.yml; do
            [ -f "$spec" ] || continue
            kind=$(sed -n 's/^kind:[[:space:]]*//p' "$spec" | head -n 1)
            names=$(sed -n 's/^  name:[[:space:]]*//p' "$spec" | tr -d '"')
            for name in $names; do
                devices="$devices$kind=$name
"
            done
        done
    done
    count=$(printf '%s' "$devices" | grep -c . || true)
    log info "Found $count CDI devices"
    printf '%s' "$devices"
}

# --- config -------------------------------------------------------------------

config_cmd() {
    file=/etc/nvidia-container-runtime/config.toml in_place=false
    while [ $# -gt 0 ]; do
        case $1 in
            --config-file=*) file=${1#*=} ;;
            --config-file) file=${2:?}; shift ;;
            --in-place | -i) in_place=true ;;
            default) ;;
            *) usage_error "flag provided but not defined: $1" ;;
        esac
        shift
    done
    default_config=$(printf '%s\n' \
        '#accept-nvidia-visible-devices-as-volume-mounts = false' \
        '' '[nvidia-container-cli]' 'ldconfig = "@/sbin/ldconfig.real"' \
        '' '[nvidia-container-runtime]' 'log-level = "info"' 'mode = "auto"' \
        '' '[nvidia-ctk]' 'path = "nvidia-ctk"')
    if [ "$in_place" = true ]; then
        [ -f "$file" ] || printf '%s\n' "$default_config" | write_file "$file"
    else
        printf '%s\n' "$default_config"
    fi
}

# --- main ---------------------------------------------------------------------

while [ $# -gt 0 ]; do
    case $1 in
        --version | -v) print_version; exit 0 ;;
        --quiet | -q) QUIET=true ;;
        --debug | -d) ;;
        --help | -h) usage; exit 0 ;;
        -*) usage_error "flag provided but not defined: $1" ;;
        *) break ;;
    esac
    shift
done

[ $# -gt 0 ] || { usage; exit 0; }
cmd=$1
shift
case $cmd in
    runtime)
        [ "${1:-}" = configure ] || usage_error "unknown runtime command '${1:-}'"
        shift
        runtime_configure "$@"
        ;;
    cdi)
        sub=${1:-}
        [ $# -gt 0 ] && shift
        case $sub in
            generate) cdi_generate "$@" ;;
            list) cdi_list "$@" ;;
            *) usage_error "unknown cdi command '$sub'" ;;
        esac
        ;;
    config) config_cmd "$@" ;;
    *) printf 'No help topic for '"'"'%s'"'"'\n' "$cmd" >&2; exit 3 ;;
esac
# PKG_VERSION is kept for people reading an installed copy: it is what dpkg installed.
: "$PKG_VERSION"

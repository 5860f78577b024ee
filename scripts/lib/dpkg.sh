# shellcheck shell=bash
# dpkg.sh: what is installed, and the holds (sourced by scripts/lib.sh).

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

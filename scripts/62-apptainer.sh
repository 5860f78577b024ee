#!/usr/bin/env bash
# 62-apptainer: Apptainer beside the container runtime, pinned and held, set up
# for rootless use and for --nv.
#
# Reads GOLDEN_APPTAINER_PACKAGES, GOLDEN_APPTAINER_VERSION,
# GOLDEN_APPTAINER_SUITE, GOLDEN_APPTAINER_USER, GOLDEN_OS_CODENAME and, with
# a driver, GOLDEN_DRIVER_SOURCES.
#
# Debian packages apptainer only in unstable, whose other packages must not
# reach the image. So, for this step only: one source for the suite, on the
# URI of the image's own OS archive (its entry for the codename), and an apt
# preferences file that gives every package of that suite priority -1 (never
# installed) except apptainer at the pinned release (1001, as 10-apt-pins'
# golden-pins does too). Its dependencies must come from the image's own
# release. The suite's Release file is not checked for expiry (see below). Then the source, the preferences file and the suite's index files
# are removed again, whatever happens; the package stays pinned (golden-pins)
# and 90-release holds it (GOLDEN_HOLDS).
#
# Rootless: a system user for the boot's check, with /etc/subuid and
# /etc/subgid ranges (the fleet's own users get theirs from useradd), and
# unprivileged user namespaces on (Debian's kernel.unprivileged_userns_clone,
# 1 by default on trixie; written so that nothing turns it off by accident).
# --nv: /etc/apptainer/nvliblist.conf is Debian's; on an image with a driver
# every library of the driver's packages it lacks is added. A driverless image
# keeps Debian's list untouched (the GPU Operator's driver brings the
# libraries; its list already names NVIDIA's usual ones).
#
# golden-layer: apptainer
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=62-apptainer; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

require_env GOLDEN_APPTAINER_VERSION is_version
require_env GOLDEN_APPTAINER_SUITE is_suite
require_env GOLDEN_APPTAINER_USER is_user_name
require_env GOLDEN_OS_CODENAME is_codename
specs=()
env_words specs GOLDEN_APPTAINER_PACKAGES is_install_spec
((${#specs[@]} == 1)) || die "GOLDEN_APPTAINER_PACKAGES must name one package, not ${#specs[@]}"
driver_sources=()
env_words driver_sources GOLDEN_DRIVER_SOURCES is_pkg_name
package=$(spec_name "${specs[0]}")
version=$GOLDEN_APPTAINER_VERSION
suite=$GOLDEN_APPTAINER_SUITE
user=$GOLDEN_APPTAINER_USER
codename=$GOLDEN_OS_CODENAME
source_file=/etc/apt/sources.list.d/golden-apptainer-$suite.list
prefs_file=/etc/apt/preferences.d/golden-apptainer-$suite
userns_conf=/etc/sysctl.d/60-golden-apptainer.conf
nvliblist=/etc/apptainer/nvliblist.conf

# image_archive: "OPTIONS|URI" of the image's own OS archive, the entry whose
# suite is the codename itself (one-line .list or deb822 .sources); OPTIONS is
# a one-line entry's [...] or a deb822 Signed-By (a path) as signed-by=.
image_archive() {
    local f found
    for f in "$ROOT"/etc/apt/sources.list "$ROOT"/etc/apt/sources.list.d/*.list \
        "$ROOT"/etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        case ${f##*/} in golden-*) continue ;; esac
        if [[ $f == *.sources ]]; then
            # shellcheck disable=SC2016  # an awk program, not shell
            found=$(awk -v c="$codename" 'BEGIN { RS = ""; FS = "\n" }
                {
                    t = ""; u = ""; s = ""; k = ""
                    for (i = 1; i <= NF; i++) {
                        line = $i
                        if (line ~ /^Types:/) t = " " substr(line, 7) " "
                        else if (line ~ /^URIs:/) { split(substr(line, 6), a, " "); u = a[1] }
                        else if (line ~ /^Suites:/) s = " " substr(line, 8) " "
                        else if (line ~ /^Signed-By:[ \t]*\//) { split(substr(line, 11), b, " "); k = b[1] }
                    }
                    gsub(/[ \t]+/, " ", t); gsub(/[ \t]+/, " ", s)
                    if (t ~ / deb / && index(s, " " c " ") && u != "") {
                        print (k != "" ? "signed-by=" k : "") "|" u; exit
                    }
                }' "$f")
        else
            # shellcheck disable=SC2016  # an awk program, not shell
            found=$(awk -v c="$codename" '$1 == "deb" {
                    o = ""; i = 2
                    if ($2 ~ /^\[/) {
                        while (i <= NF && $i !~ /\]$/) { o = o " " $i; i++ }
                        o = o " " $i; i++
                        gsub(/^ *\[ *| *\] *$/, "", o)
                    }
                    if ($(i + 1) == c) { print o "|" $i; exit }
                }' "$f")
        fi
        if [[ -n $found ]]; then
            printf '%s\n' "$found"
            return 0
        fi
    done
    return 1
}

# remove_suite: the temporary source, its preferences and its index files.
remove_suite() {
    remove_path "$source_file"
    remove_path "$prefs_file"
    local lists
    shopt -s nullglob
    lists=("$ROOT"/var/lib/apt/lists/*_dists_"${suite}"_*)
    shopt -u nullglob
    if ((${#lists[@]})); then
        rm -f -- "${lists[@]}"
        log "removed the $suite index files (${#lists[@]})"
    fi
}

installed=$(pkg_version "$package")
if [[ -n $installed && $installed == "$version"-* ]]; then
    log "$package $installed is installed already"
else
    archive=$(image_archive) || die "no entry for $codename in the image's apt sources: no archive to take $suite from"
    options=${archive%%|*}
    uri=${archive#*|}
    is_url "$uri" || die "the image's archive URI $(shown "$uri") is not a URL"
    [[ $options =~ ^[A-Za-z0-9=,._/:\ -]*$ ]] || die "unexpected options $(shown "$options") on the image's $codename entry"
    # The suite's Release is not checked for expiry: unstable's Valid-Until is a week ahead and
    # a frozen mirror (a snapshot, a build network's cache) is past it, while the signature is
    # still checked and only the pinned release of one package is taken from it.
    options="${options:+$options }check-valid-until=no"
    trap remove_suite EXIT
    put_file 0644 "$source_file" <<EOF
# Written by golden for one step (62-apptainer), removed by it: $package is only in $suite.
deb ${options:+[$options] }$uri $suite main
EOF
    put_file 0644 "$prefs_file" <<EOF
Explanation: Written by golden for one step (62-apptainer), removed by it: from $suite
Explanation: only $package at $version, nothing else.
Package: $package
Pin: version $version-*
Pin-Priority: 1001

Package: *
Pin: release a=$suite
Pin-Priority: -1

Package: *
Pin: release n=$suite
Pin-Priority: -1
EOF
    apt_update
    apt_install "${specs[@]}"
    remove_suite
    trap - EXIT
    installed=$(pkg_version "$package")
    [[ $installed == "$version"-* ]] || die "$package ${installed:-not installed}: expected $version-*"
    log "installed $package $installed from $suite; the suite is gone from the image's sources again"
fi
reported=$(apptainer --version) || die "apptainer --version failed"
[[ $reported == "apptainer version $version" ]] || die "apptainer --version says $(shown "$reported"), not $version"

# ---------------------------------------------------------------- rootless use

if ! getent passwd "$user" >/dev/null; then
    useradd --system --user-group --create-home --home-dir "/var/lib/$user" --shell /usr/sbin/nologin \
        --comment "golden, the Apptainer rootless check" "$user" || die "useradd $user failed"
    log "made the system user $user"
fi
# next_range FILE: the first id after every range in FILE, at least 100000
# (login.defs' SUB_UID_MIN), so the check user's range overlaps no other.
next_range() {
    awk -F: 'BEGIN { n = 100000 } NF == 3 && $2 + $3 > n { n = $2 + $3 } END { print n }' "$ROOT$1" 2>/dev/null ||
        echo 100000
}
for file in /etc/subuid /etc/subgid; do
    [[ -f $ROOT$file ]] || put_file 0644 "$file" </dev/null
    if grep -q "^$user:" "$ROOT$file"; then
        log "$user has a range in $file already"
        continue
    fi
    start=$(next_range "$file")
    flag=--add-subuids
    [[ $file == /etc/subgid ]] && flag=--add-subgids
    usermod "$flag" "$start-$((start + 65535))" "$user" || die "usermod $flag for $user failed"
    log "$user: ids $start-$((start + 65535)) in $file"
done
put_file 0644 "$userns_conf" <<'CONF'
# Written by golden: Apptainer runs rootless in unprivileged user namespaces.
# The leading "-": kernels without Debian's switch ignore the line.
-kernel.unprivileged_userns_clone = 1
CONF

# ---------------------------------------------------------------- --nv

[[ -f $ROOT$nvliblist ]] || die "$nvliblist is missing: $package did not install it"
if ((${#driver_sources[@]} == 0)); then
    log "no driver on the image: $nvliblist stays Debian's"
else
    mapfile -t driver_pkgs < <(packages_from_sources "${driver_sources[@]}")
    missing=()
    while read -r lib; do
        grep -qxF "$lib" "$ROOT$nvliblist" || missing+=("$lib")
    done < <(for p in "${driver_pkgs[@]}"; do dpkg -L "$p"; done |
        sed -n 's#^/usr/lib\(/[a-z0-9_-]*\)\{0,1\}/\(lib[A-Za-z0-9_+-]*\.so\)\(\.[0-9.]*\)\{0,1\}$#\2#p' | sort -u)
    if ((${#missing[@]})); then
        put_file 0644 "$nvliblist" < <(cat "$ROOT$nvliblist"
            printf '# Added by golden: the driver packages'"'"' libraries the list lacked.\n'
            printf '%s\n' "${missing[@]}")
        log "$nvliblist: added ${missing[*]}"
    else
        log "$nvliblist names every library of the driver's packages already"
    fi
fi
log "apptainer $version ($package $installed), rootless for $user, user namespaces on"

#!/usr/bin/env bash
# 10-apt-pins: pin the GPU stack in apt and keep unattended-upgrades off it.
#
# Reads GOLDEN_PINS ("name=pattern" or "src:NAME=pattern" words),
# GOLDEN_HOLDS and, when the image has a driver, GOLDEN_DRIVER_SOURCES and
# GOLDEN_DRIVER_PIN (every package built from those sources is pinned to it).
# Writes
#   /etc/apt/preferences.d/golden-pins        Pin-Priority 1001 per pin: above
#       1000, so apt keeps (or moves back to) the pinned version even when an
#       archive carries a newer one, e.g. Debian's security suite.
#   /etc/apt/apt.conf.d/51golden-unattended   the held packages and the driver
#       source packages on unattended-upgrades' blacklist.
# Both are written before any driver package is installed. Everything is
# validated first, so a bad value writes nothing.
#
# golden-layer: base
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=10-apt-pins; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

check_env GOLDEN_PROFILE is_profile
pins=()
env_words pins GOLDEN_PINS is_pin_entry
holds=()
env_words holds GOLDEN_HOLDS is_pkg_name
sources=()
env_words sources GOLDEN_DRIVER_SOURCES is_pkg_name
check_env GOLDEN_DRIVER_PIN is_pin_pattern
# The driver's source packages, pinned to the driver's version (GOLDEN_PINS
# may list them already: a pin is written once).
if [[ -n ${GOLDEN_DRIVER_PIN:-} ]]; then
    for name in "${sources[@]}"; do
        pins+=("src:$name=$GOLDEN_DRIVER_PIN")
    done
fi

# --- /etc/apt/preferences.d/golden-pins
# The note rides on the first record as Explanation fields: a paragraph of
# comments alone is "an invalid record" to apt.
note="Explanation: Written by golden${GOLDEN_PROFILE:+ for profile $GOLDEN_PROFILE}: the GPU stack is pinned.
Explanation: Priority 1001 keeps (or brings back) exactly these versions.
"
prefs=''
declare -A seen=()
for entry in "${pins[@]}"; do
    [[ -z ${seen[$entry]:-} ]] || continue
    seen[$entry]=1
    prefs+="${prefs:+
}${note}Package: ${entry%%=*}
Pin: version ${entry#*=}
Pin-Priority: 1001
"
    note=''
done

# --- /etc/apt/apt.conf.d/51golden-unattended
declare -A listed=()
blacklist=''
for name in "${holds[@]}" "${sources[@]}"; do
    [[ -z ${listed[$name]:-} ]] || continue
    listed[$name]=1
    blacklist+="    \"$(regex_escape "$name")\";
"
done
unattended="// Written by golden${GOLDEN_PROFILE:+ for profile $GOLDEN_PROFILE}: unattended-upgrades must never move the
// pinned GPU stack (held packages and the driver's source packages). Entries
// are Python regular expressions, anchored.
Unattended-Upgrade::Package-Blacklist {
${blacklist}};
"

if [[ -n $prefs ]]; then
    put_file 0644 /etc/apt/preferences.d/golden-pins <<<"${prefs%$'\n'}"
else
    log "no pins in this profile"
    remove_path /etc/apt/preferences.d/golden-pins
fi
put_file 0644 /etc/apt/apt.conf.d/51golden-unattended <<<"${unattended%$'\n'}"
log "${#seen[@]} pins, ${#listed[@]} blacklisted names"

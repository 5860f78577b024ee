# shellcheck shell=bash
# lib.sh: helpers shared by golden's provisioning steps (scripts/NN-name.sh),
# the one file a step sources. The helpers live in scripts/lib/, one concern a
# file: log (messages), validate (the GOLDEN_* forms), files (the image's
# tree), apt, dpkg, kernel, systemd and modcache (the build machine's cache
# of built driver modules).
#
# Packer uploads scripts/ to /tmp/golden/scripts/ and then runs each step from
# a temporary copy, so a step names itself and sources this file by its
# uploaded path, in one line:
#
#     set -euo pipefail; GOLDEN_STEP=10-apt-pins; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"
#
# The GOLDEN_* variables the steps read are listed once, in golden/contract.py
# (name, layer, form, whether it may be empty). golden validated every value
# before rendering, but a step does not trust its environment blindly: each
# value is checked again (lib/validate.sh) before it reaches a file, a command
# line or apt.
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

# The parts, from beside this file (scripts/lib/).
if [[ ${BASH_SOURCE[0]} == */* ]]; then
    _golden_lib=${BASH_SOURCE[0]%/*}/lib
else
    _golden_lib=lib
fi
# shellcheck source=lib/log.sh
source "$_golden_lib/log.sh"
# shellcheck source=lib/validate.sh
source "$_golden_lib/validate.sh"
# shellcheck source=lib/files.sh
source "$_golden_lib/files.sh"
# shellcheck source=lib/apt.sh
source "$_golden_lib/apt.sh"
# shellcheck source=lib/dpkg.sh
source "$_golden_lib/dpkg.sh"
# shellcheck source=lib/kernel.sh
source "$_golden_lib/kernel.sh"
# shellcheck source=lib/systemd.sh
source "$_golden_lib/systemd.sh"
# shellcheck source=lib/modcache.sh
source "$_golden_lib/modcache.sh"
unset _golden_lib

# The upload directory and the image's root, checked once for every step.
GOLDEN_STAGE=${GOLDEN_STAGE:-/tmp/golden}
require_env GOLDEN_STAGE is_abs_path
GOLDEN_ROOT=${GOLDEN_ROOT:-/}
require_env GOLDEN_ROOT is_abs_path
# ROOT is the prefix for every path on the image: "" for the real root.
ROOT=${GOLDEN_ROOT%/}

#!/usr/bin/env bash
# 32-boot-chain: Debian's signed UEFI boot chain in the image, held, for a
# local disk image (target.format: disk): shim-signed (shim, signed with
# Microsoft's UEFI CA), shim-helpers-amd64-signed (MokManager),
# grub-efi-amd64-signed and mokutil (golden/data/bootchain.yaml).
#
# golden writes the disk's EFI system partition itself, from these packages'
# files under /usr/lib (golden/targets/disk.py), so nothing here installs a
# bootloader or touches firmware variables. The packages' own scripts could:
# shim-signed's postinst runs grub-install when /sys/firmware/efi exists and
# /boot/efi/EFI/debian does, and update-secureboot-policy (shim-signed-common)
# offers to turn shim's validation off with mokutil when DKMS modules are
# there. So debconf answers both no first (no NVRAM update, no policy change),
# the step refuses to run with anything under /boot/efi (an ESP mounted in the
# build), and checks afterwards that /boot/efi is still empty.
#
# Reads GOLDEN_BOOT_CHAIN_PACKAGES.
#
# golden-layer: boot-chain
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=32-boot-chain; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

boot_specs=()
env_words boot_specs GOLDEN_BOOT_CHAIN_PACKAGES is_install_spec
((${#boot_specs[@]})) || die "GOLDEN_BOOT_CHAIN_PACKAGES is not set"

# esp_entries: what is under /boot/efi on the image (nothing, in a bake).
esp_entries() {
    [[ -d $ROOT/boot/efi ]] || return 0
    find "$ROOT/boot/efi" -mindepth 1 -maxdepth 2 | sort | sed "s|^$ROOT||"
}

left=$(esp_entries)
[[ -z $left ]] || die "/boot/efi is not empty ($(shown "${left%%$'\n'*}")): golden writes the ESP itself; unmount it"

# The answers, before the packages' scripts ask: grub-install (if it ever ran)
# leaves NVRAM alone, and shim's Secure Boot validation stays as it is. Below
# another root (the unit tests), the answers go to that tree's debconf file.
debconf_db=()
[[ -z $ROOT ]] || debconf_db=("DEBCONF_DB_OVERRIDE=File{$ROOT/var/cache/debconf/config.dat}")
env "${debconf_db[@]}" debconf-set-selections <<'EOF_DEBCONF' || die "debconf-set-selections failed"
grub-efi-amd64 grub2/update_nvram boolean false
grub-efi-amd64 grub2/force_efi_extra_removable boolean false
shim-signed shim/disable_secureboot boolean false
shim-signed shim/enable_secureboot boolean false
EOF_DEBCONF

apt_update
apt_install --no-install-recommends "${boot_specs[@]}"

left=$(esp_entries)
[[ -z $left ]] || die "installing the boot chain wrote to /boot/efi ($(shown "${left%%$'\n'*}")); it must not"

names=()
for spec in "${boot_specs[@]}"; do
    names+=("${spec%%=*}")
done
hold_packages "${names[@]}"
log "boot chain installed and held: ${names[*]}"

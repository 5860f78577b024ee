#!/usr/bin/env bash
# 42-module-signing: the driver's DKMS modules signed with the build's key,
# then the private key destroyed (target.secure_boot, golden/secureboot.py).
#
# golden put the key and its certificate (DER) in GOLDEN_SIGNING_DIR before
# the bake: in the working copy where Debian's DKMS keeps them (/var/lib/dkms,
# the local target), or on a tmpfs of the EC2 build instance, so the key never
# touches the volume that becomes the AMI. This step puts the certificate at
# /var/lib/dkms/mok.pub and writes DKMS's key settings out in
# /etc/dkms/framework.conf.d/ (so a later `dkms build` on the host signs with
# whatever key the fleet puts at /var/lib/dkms/mok.key), then signs every module
# under /lib/modules/KVER/updates/dkms again with the kernel's sign-file: a
# module compiled here carries DKMS's own signature already, one restored from
# golden's module cache carries another bake's, so each one's old signature is
# cut off first and all are signed alike. Each module's signature must then
# name the certificate's serial (modinfo's sig_key); finally the private key
# is overwritten and removed: nothing in the image can sign a module after it.
#
# Reads GOLDEN_SECURE_BOOT (nothing to do when false), GOLDEN_SIGNING_SERIAL
# (the certificate's serial, upper-case hex), GOLDEN_SIGNING_DIR and GOLDEN_KERNEL.
#
# golden-layer: driver
# shellcheck source=lib.sh
set -euo pipefail; GOLDEN_STEP=42-module-signing; source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"

require_env GOLDEN_SECURE_BOOT is_bool
check_env GOLDEN_KERNEL is_kernel
check_env GOLDEN_SIGNING_SERIAL is_serial
check_env GOLDEN_SIGNING_DIR is_abs_path
if [[ $GOLDEN_SECURE_BOOT != true ]]; then
    log "target.secure_boot is off: the modules keep DKMS's own signature"
    exit 0
fi
[[ -n ${GOLDEN_SIGNING_SERIAL:-} ]] ||
    die "no signing key was prepared for this bake: \`invoke build\` prepares one (target.signing_key); \`invoke render\` alone does not"
staged=${GOLDEN_SIGNING_DIR:-/var/lib/dkms}
key=$staged/mok.key
cert=/var/lib/dkms/mok.pub
magic='~Module signature appended~'

[[ -f $ROOT$key && -f $ROOT$staged/mok.pub ]] ||
    die "no signing key at $key and $staged/mok.pub: golden puts them there before the bake (target.signing_key)"
if [[ $staged != /var/lib/dkms ]]; then
    put_file 0644 "$cert" <"$ROOT$staged/mok.pub"
fi

put_file 0644 /etc/dkms/framework.conf.d/golden-signing.conf <<EOF
# Written by golden (42-module-signing): the key DKMS signs modules with. The
# private key was removed from the image after the build signed its modules;
# put the fleet's key here to sign a module rebuilt on the host.
mok_signing_key="/var/lib/dkms/mok.key"
mok_certificate="$cert"
EOF

# sign_file KVER: the kernel's sign-file, where DKMS looks for it.
sign_file() {
    local k=$1 c
    for c in "/usr/lib/linux-kbuild-${k%.*}/scripts/sign-file" "/usr/src/linux-headers-$k/scripts/sign-file" \
        "/lib/modules/$k/build/scripts/sign-file"; do
        if [[ -x $ROOT$c ]]; then
            printf '%s\n' "$ROOT$c"
            return 0
        fi
    done
    die "no sign-file for kernel $k (linux-kbuild or the headers provide it)"
}

# strip_signature KO: cut an appended module signature off KO (its trailer:
# the signature, a 12-byte struct module_signature whose last 4 bytes are the
# signature's length, big-endian, and the magic string with its newline).
strip_signature() {
    local ko=$1 size sig_len
    [[ $(tail -c 28 "$ko") == "$magic" ]] || return 0
    sig_len=$(tail -c 32 "$ko" | head -c 4 | od -An -tu1 | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
    size=$(stat -c %s "$ko")
    ((sig_len > 0 && sig_len + 40 < size)) || die "$ko: a signature trailer of $sig_len bytes does not fit"
    truncate -s $((size - 40 - sig_len)) "$ko"
}

# The pinned kernel, or every kernel of the image (as 40-driver builds for).
if [[ -n ${GOLDEN_KERNEL:-} ]]; then
    kernels=("$GOLDEN_KERNEL")
else
    mapfile -t kernels < <(image_kernels)
fi
for kernel in "${kernels[@]}"; do
    signer=$(sign_file "$kernel")
    dir=$ROOT/lib/modules/$kernel/updates/dkms
    mapfile -t modules < <(find "$dir" -maxdepth 1 -name '*.ko*' 2>/dev/null | sort)
    ((${#modules[@]})) || die "no DKMS module under /lib/modules/$kernel/updates/dkms to sign"
    for ko in "${modules[@]}"; do
        [[ $ko == *.ko ]] || die "${ko#"$ROOT"}: a compressed module; golden signs uncompressed ones only"
        strip_signature "$ko"
        "$signer" sha256 "$ROOT$key" "$ROOT$cert" "$ko" || die "sign-file failed on ${ko#"$ROOT"}"
        got=$(modinfo -F sig_key "$ko" | tr -d ':' | sed 's/^0*//')
        [[ $got == "${GOLDEN_SIGNING_SERIAL#0}" ]] ||
            die "${ko#"$ROOT"} is signed by key $(shown "$got"), not the certificate's $GOLDEN_SIGNING_SERIAL"
        log "signed ${ko#"$ROOT"} ($(modinfo -F signer "$ko"))"
    done
    depmod ${ROOT:+-b "$ROOT"} "$kernel"
done

# The private key goes: overwritten, then unlinked.
shred -u -z "$ROOT$key"
[[ ! -e $ROOT$key ]] || die "could not remove $key"
if [[ $staged != /var/lib/dkms ]]; then
    rm -f "$ROOT$staged/mok.pub"
    rmdir "$ROOT$staged" 2>/dev/null || true
fi
log "removed the private signing key; the image keeps the certificate at $cert"

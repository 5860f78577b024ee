# shellcheck shell=bash
# files.sh: the image's tree and the files golden writes into it (sourced by
# scripts/lib.sh). Every path is a path on the image, under $ROOT.

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

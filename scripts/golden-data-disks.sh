#!/usr/bin/env bash
# golden-data-disks: local NVMe (EC2's instance store) as one filesystem for data
# and the container runtime's storage, at every boot (golden-data-disks.service,
# installed by 65-data-disks).
#
# /etc/golden/data-disks.conf (written at bake) says the NVMe model to use, the
# mount point, the filesystem and the runtime's storage directory. The disks are
# the NVMe namespaces whose /sys/block/nvmeXn1/device/model, trimmed, equals the
# model; one that holds a mounted filesystem (the root or boot disk, an EBS
# volume in use) is never touched, and EBS volumes have another model anyway.
# Several disks become one RAID0 (/dev/md/golden-data), one is used directly.
#
# Idempotent: an array that is already there (assembled by udev, or by us with
# `mdadm --assemble`) and a filesystem labelled golden-data are kept and only
# mounted. After a stop/start the instance store is empty: the array is
# created and the filesystem made again. No disks: status none, exit 0.
#
# The runtime's storage: the unit runs before docker.service/containerd.service
# and bind-mounts <mount>/docker onto /var/lib/docker (<mount>/containerd onto
# /var/lib/containerd), so the runtime's configuration is the same with or
# without data disks, and without them the runtime stays on the root disk,
# unchanged. What the bake left in the runtime's directory is copied over the
# first time.
#
# The result is in /run/golden/data-disks.json: {"status": raid0|single|none|
# failed, "devices": [...], "mount": ..., "source": ..., "storage": ...}.
# GOLDEN_ROOT (tests only) prefixes every path it reads and writes.
set -euo pipefail

root=${GOLDEN_ROOT:-}
root=${root%/}
conf=$root/etc/golden/data-disks.conf
status_file=$root/run/golden/data-disks.json
label=golden-data
array=/dev/md/golden-data

log() { printf 'golden-data-disks: %s\n' "$*" >&2; }

model='' mount_point='' filesystem=ext4 storage=''
devices=() source='' state=none

write_status() { # STATE [ERROR]
    local list='' d
    for d in "${devices[@]}"; do
        list+="${list:+, }\"$d\""
    done
    mkdir -p "${status_file%/*}"
    printf '{"status": "%s", "devices": [%s], "mount": %s, "source": %s, "storage": %s, "error": %s}\n' \
        "$1" "$list" "$(json_opt "$([[ $1 == none ]] || printf '%s' "$mount_point")")" "$(json_opt "$source")" \
        "$(json_opt "$storage")" "$(json_opt "${2:-}")" >"$status_file.tmp"
    mv "$status_file.tmp" "$status_file"
}

json_opt() { # a JSON string, or null when empty (the values are plain paths and words)
    if [[ -z $1 ]]; then printf 'null'; else printf '"%s"' "${1//[\"\\]/}"; fi
}

fail() {
    log "$*"
    write_status failed "$*"
    exit 1
}

read_conf() {
    [[ -f $conf ]] || fail "no $conf"
    local key value
    while IFS='=' read -r key value; do
        case $key in
            model) model=$value ;;
            mount) mount_point=$value ;;
            filesystem) filesystem=$value ;;
            storage) storage=$value ;;
            '' | '#'*) ;;
            *) fail "unknown key $key in $conf" ;;
        esac
    done <"$conf"
    [[ $model =~ ^[A-Za-z0-9][A-Za-z0-9\ ._-]*$ ]] || fail "invalid model in $conf"
    [[ $mount_point =~ ^(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$ ]] || fail "invalid mount in $conf"
    [[ $filesystem == ext4 || $filesystem == xfs ]] || fail "invalid filesystem in $conf"
    [[ -z $storage || $storage =~ ^(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$ ]] || fail "invalid storage in $conf"
}

# in_use NAME: the disk (or a partition of it) holds a mounted filesystem or swap, other
# than our own at the mount point (this unit run again).
in_use() {
    local name=$1 src target
    while read -r src target; do
        src=${src%%\[*}
        [[ $target == "$root$mount_point" || $target == "$root$storage" ]] && continue
        [[ $src == "/dev/$name" || $src == "/dev/${name}p"* ]] && return 0
    done < <(findmnt -rn -o SOURCE,TARGET
             [[ -r $root/proc/swaps ]] && awk 'NR > 1 { print $1, "[swap]" }' "$root/proc/swaps")
    return 1
}

find_disks() {
    local dir name have
    for dir in "$root"/sys/block/nvme*; do
        name=${dir##*/}
        [[ $name =~ ^nvme[0-9]+n[0-9]+$ && -r $dir/device/model ]] || continue
        read -r have <"$dir/device/model" || true
        [[ $have == "$model" ]] || continue
        if in_use "$name"; then
            log "/dev/$name ($have) holds a mounted filesystem: not used"
            continue
        fi
        devices+=("/dev/$name")
    done
}

# release DEVICE: stop an (inactive, udev-assembled) array holding it and wipe its md superblock.
release() {
    local name=${1##*/} holder
    for holder in "$root/sys/block/$name/holders"/md*; do
        [[ -e $holder ]] || continue
        mdadm --stop "/dev/${holder##*/}" || log "could not stop /dev/${holder##*/}"
    done
    if mdadm --examine "$1" >/dev/null 2>&1; then
        mdadm --zero-superblock "$1" || fail "could not wipe the md superblock of $1"
    fi
}

# our_array: the path of a running array named golden-data, if any.
our_array() {
    mdadm --detail --scan 2>/dev/null | awk '$1 == "ARRAY" {
        for (i = 3; i <= NF; i++) if ($i ~ /^name=(.*:)?golden-data$/) { print $2; exit } }'
}

# the_raid: one RAID0 over the disks, assembled if it exists, created if not; 0 when created.
made_new=false
the_raid() {
    local running
    running=$(our_array)
    if [[ -n $running ]]; then
        log "array $running is running"
        source=$running
        return
    fi
    if mdadm --assemble "$array" "${devices[@]}" >/dev/null 2>&1; then
        log "assembled $array from ${devices[*]}"
        source=$array
        return
    fi
    local d
    for d in "${devices[@]}"; do
        release "$d"
    done
    mdadm --create "$array" --level=0 --raid-devices="${#devices[@]}" --run --force "${devices[@]}" \
        || fail "mdadm --create $array over ${devices[*]} failed"
    log "created RAID0 $array over ${devices[*]}"
    source=$array made_new=true
}

make_fs() {
    local have=''
    if [[ $made_new == false ]]; then
        have=$(blkid -o value -s LABEL "$source" 2>/dev/null || true)
    fi
    if [[ $have == "$label" ]]; then
        log "$source has the $label filesystem"
        return
    fi
    if [[ $filesystem == xfs ]]; then
        mkfs.xfs -f -L "$label" "$source" >/dev/null || fail "mkfs.xfs on $source failed"
    else
        mkfs.ext4 -q -F -L "$label" "$source" || fail "mkfs.ext4 on $source failed"
    fi
    log "made $filesystem ($label) on $source"
}

mounted_at() { findmnt -rn -o SOURCE --mountpoint "$1" 2>/dev/null || true; }

mount_data() {
    if [[ -n $(mounted_at "$root$mount_point") ]]; then
        log "$mount_point is mounted already"
    else
        mkdir -p "$root$mount_point"
        mount -t "$filesystem" "$source" "$root$mount_point" || fail "could not mount $source on $mount_point"
    fi
    [[ -n $storage ]] || return 0
    local on=$root$mount_point/${storage##*/}
    if [[ -n $(mounted_at "$root$storage") ]]; then
        log "$storage is mounted already"
        return
    fi
    if [[ ! -d $on ]]; then
        mkdir -p "$on"
        if [[ -d $root$storage ]]; then
            cp -a "$root$storage/." "$on/" || fail "could not copy $storage to $on"
        fi
    fi
    mkdir -p "$root$storage"
    mount --bind "$on" "$root$storage" || fail "could not bind-mount $on on $storage"
    log "$storage is on $mount_point"
}

read_conf
udevadm settle --timeout=30 >/dev/null 2>&1 || true
find_disks
case ${#devices[@]} in
    0)
        log "no NVMe disk with the model \"$model\": $mount_point not made, the runtime stays on the root disk"
        storage=''
        write_status none
        exit 0
        ;;
    1)
        state=single
        source=${devices[0]}
        if [[ $(blkid -o value -s LABEL "$source" 2>/dev/null || true) != "$label" ]]; then
            release "$source"
            made_new=true
        fi
        ;;
    *)
        state=raid0
        the_raid
        udevadm settle --timeout=30 >/dev/null 2>&1 || true
        ;;
esac
make_fs
mount_data
write_status "$state"
log "$state: ${devices[*]} as $source on $mount_point"

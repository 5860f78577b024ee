#!/usr/bin/env bash
# golden-gpu-check: at boot, compare the running GPU stack with the image's
# release manifest (/etc/golden/release.json, written by 90-release).
#
# Installed as /usr/local/sbin/golden-gpu-check and run by
# golden-gpu-check.service. It checks that
#   - an NVIDIA GPU is on the PCI bus (else status "no-gpu", exit 0: a boot
#     test on a machine without a GPU can still tell the check ran);
#   - nvidia-smi sees every one of them;
#   - the loaded kernel module is the driver version of release.json;
#   - the module is the open one when the image was built with it (and the
#     proprietary one when it was not);
#   - with CDI on, a CDI specification lists the GPUs (waiting up to
#     GOLDEN_CDI_WAIT seconds, default 120, for nvidia-cdi-refresh).
# An image baked without a driver (release.json's "driver" is null) has
# nothing to check: status "no-driver", exit 0.
# It writes {"status": "ok" | "no-gpu" | "no-driver" | "failed", ...} to
# /run/golden/gpu-check.json and /var/lib/golden/gpu-check.json. On failure
# it prints the reasons on stderr (the journal and the console) and exits 1,
# so the unit is failed.
#
# release.json is read with python3 (on every image golden bakes: cloud-init
# needs it). GOLDEN_ROOT (tests only) prefixes every path it reads and writes.
#
# golden-layer: base
set -euo pipefail

root=${GOLDEN_ROOT:-/}
root=${root%/}
cdi_wait=${GOLDEN_CDI_WAIT:-120}
[[ $cdi_wait =~ ^[0-9]+$ ]] || cdi_wait=120

failures=()
status=ok
message=''
expected_version='' expected_flavor='' module='' cdi_required=false
loaded_version='' loaded_flavor='' gpus_pci=0 gpus_smi=0 cdi_devices=0 cdi_spec=''

# json_escape STRING: STRING as the inside of a JSON string.
json_escape() {
    local s=$1 out='' c i
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    # Any other control character is dropped.
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        [[ $c == [[:cntrl:]] ]] && continue
        out+=$c
    done
    printf '%s' "$out"
}

fail() {
    failures+=("$1")
}

# read_manifest FILE: the fields of release.json the check needs, one a line:
# whether the image has a driver (true/false), the driver's version, flavour
# and module, and whether CDI is on (true/false). A missing value is an empty
# line; control characters in a value are dropped, so each value stays on its
# line.
read_manifest() {
    python3 -c '
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    release = json.load(f)
driver = release.get("driver") or {}
toolkit = release.get("container_toolkit") or {}
def line(value):
    text = "" if value is None else str(value)
    return "".join(c for c in text if c.isprintable())
print("true" if driver else "false")
for key in ("version", "flavor", "module"):
    print(line(driver.get(key)))
print("true" if toolkit.get("cdi") is True else "false")
' "$1"
}

write_status() {
    local now boot_id='' kernel dest tmp
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    kernel=$(uname -r)
    [[ -r $root/proc/sys/kernel/random/boot_id ]] && boot_id=$(<"$root/proc/sys/kernel/random/boot_id")
    local body
    body=$(printf '{\n  "status": "%s",\n  "message": "%s",\n  "checked_at": "%s",\n  "boot_id": "%s",\n  "kernel": "%s",\n  "expected": {"driver_version": "%s", "flavor": "%s", "cdi": %s},\n  "found": {"gpus_pci": %d, "gpus_nvidia_smi": %d, "driver_version": "%s", "flavor": "%s", "cdi_spec": "%s", "cdi_devices": %d}\n}\n' \
        "$status" "$(json_escape "$message")" "$now" "$(json_escape "$boot_id")" "$(json_escape "$kernel")" \
        "$(json_escape "$expected_version")" "$(json_escape "$expected_flavor")" "$cdi_required" \
        "$gpus_pci" "$gpus_smi" "$(json_escape "$loaded_version")" "$(json_escape "$loaded_flavor")" \
        "$(json_escape "$cdi_spec")" "$cdi_devices")
    for dest in "$root/run/golden/gpu-check.json" "$root/var/lib/golden/gpu-check.json"; do
        mkdir -p "${dest%/*}"
        tmp=$(mktemp "${dest%/*}/.gpu-check.XXXXXX")
        printf '%s\n' "$body" >"$tmp"
        chmod 0644 "$tmp"
        mv -f "$tmp" "$dest"
    done
}

finish() {
    if ((${#failures[@]})); then
        status=failed
        message=$(printf '%s; ' "${failures[@]}")
        message=${message%; }
    fi
    write_status
    case $status in
        failed)
            printf 'golden-gpu-check: FAILED: %s\n' "$message" >&2
            exit 1
            ;;
        *)
            printf 'golden-gpu-check: %s: %s\n' "$status" "$message"
            exit 0
            ;;
    esac
}

# --- the manifest
manifest=$root/etc/golden/release.json
if [[ ! -r $manifest ]]; then
    fail "the release manifest /etc/golden/release.json is missing"
    finish
fi
if ! command -v python3 >/dev/null 2>&1; then
    fail "python3 not found: cannot read the release manifest"
    finish
fi
if ! fields=$(read_manifest "$manifest" 2>&1); then
    fail "the release manifest /etc/golden/release.json cannot be read: $(tail -n 1 <<<"$fields")"
    finish
fi
mapfile -t field <<<"$fields"
has_driver=${field[0]:-false}
expected_version=${field[1]:-}
expected_flavor=${field[2]:-}
module=${field[3]:-}
[[ ${field[4]:-} == true ]] && cdi_required=true
if [[ $has_driver != true ]]; then
    status=no-driver
    message="the image has no NVIDIA driver; nothing to check"
    finish
fi
[[ -n $expected_version ]] || fail "release.json has no driver version"
[[ $module =~ ^[a-z0-9_-]+$ ]] || module=nvidia

# --- NVIDIA GPUs on the PCI bus (vendor 0x10de, class 0x03xxxx: display
# controllers; NVSwitches are bridges and do not count).
for dev in "$root"/sys/bus/pci/devices/*; do
    [[ -r $dev/vendor && -r $dev/class ]] || continue
    [[ $(<"$dev/vendor") == 0x10de ]] || continue
    [[ $(<"$dev/class") == 0x03* ]] || continue
    gpus_pci=$((gpus_pci + 1))
done
if ((gpus_pci == 0)); then
    status=no-gpu
    message="no NVIDIA GPU on the PCI bus; nothing to check"
    finish
fi

# --- nvidia-smi sees them
if ! command -v nvidia-smi >/dev/null 2>&1; then
    fail "nvidia-smi not found"
elif smi=$(nvidia-smi -L 2>&1); then
    gpus_smi=$(grep -c '^GPU [0-9]' <<<"$smi" || true)
    ((gpus_smi >= gpus_pci)) || fail "nvidia-smi sees $gpus_smi of the $gpus_pci NVIDIA GPUs on the PCI bus"
else
    fail "nvidia-smi -L failed: $(head -n 1 <<<"$smi")"
fi

# --- CUDA code runs: the program the bake compiled with the image's toolkit
# (/usr/lib/golden/cuda-check, only on images with a CUDA toolkit) must run
# its kernel on every GPU nvidia-smi sees.
cuda_check=$root/usr/lib/golden/cuda-check
if [[ -x $cuda_check && $gpus_smi -gt 0 ]]; then
    answer=$("$cuda_check" 2>&1 | tail -n 1) || true
    ran=$(python3 -c '
import json, sys
try:
    data = json.loads(sys.argv[1])
    devices = data.get("devices") or []
    print(sum(1 for d in devices if d.get("kernel") == "cudaSuccess") if data.get("error") == 0 else -1)
except (ValueError, AttributeError):
    print(-2)
' "$answer")
    if [[ $ran == -2 ]]; then
        fail "cuda-check printed no answer: $(head -c 200 <<<"$answer")"
    elif ((ran < gpus_smi)); then
        fail "CUDA code ran on $((ran < 0 ? 0 : ran)) of $gpus_smi GPUs: cuda-check said $(head -c 200 <<<"$answer")"
    fi
fi

# --- the loaded module: version and flavour
proc_version=$root/proc/driver/nvidia/version
if [[ -r $proc_version ]]; then
    first=$(head -n 1 "$proc_version")
    if [[ $first =~ Kernel\ Module(\ for\ [^[:space:]]+)?[[:space:]]+([0-9]+\.[0-9]+(\.[0-9]+)?) ]]; then
        loaded_version=${BASH_REMATCH[2]}
    fi
    if [[ $first == *"Open Kernel Module"* ]]; then
        loaded_flavor=open
    else
        loaded_flavor=proprietary
    fi
fi
if [[ -z $loaded_version ]]; then
    for f in "$root/sys/module/${module//-/_}/version" "$root/sys/module/nvidia/version"; do
        if [[ -r $f ]]; then
            loaded_version=$(<"$f")
            break
        fi
    done
fi
if [[ -z $loaded_version ]]; then
    fail "the NVIDIA kernel module is not loaded"
elif [[ -n $expected_version && $loaded_version != "$expected_version" ]]; then
    fail "driver version mismatch: the loaded module is $loaded_version, release.json says $expected_version"
fi
if [[ -n $loaded_version ]]; then
    if [[ -z $loaded_flavor ]]; then
        fail "cannot tell the loaded module's flavour: /proc/driver/nvidia/version is missing"
    elif [[ -n $expected_flavor && $loaded_flavor != "$expected_flavor" ]]; then
        fail "the $loaded_flavor kernel module is loaded, the image was built with the $expected_flavor one"
    fi
fi

# --- CDI: a specification that lists the GPUs
count_cdi() {
    local f n
    cdi_devices=0
    cdi_spec=''
    for f in "$root"/var/run/cdi/*.yaml "$root"/var/run/cdi/*.json "$root"/etc/cdi/*.yaml "$root"/etc/cdi/*.json; do
        [[ -r $f ]] || continue
        grep -q 'nvidia.com/gpu' "$f" || continue
        # Device entries other than "all" (one per GPU and naming strategy).
        n=$(grep -cE '^[[:space:]]*-[[:space:]]*"?name"?:' "$f" || true)
        if grep -qE '^[[:space:]]*-[[:space:]]*"?name"?:[[:space:]]*"?all"?[[:space:]]*,?$' "$f"; then
            n=$((n - 1))
        fi
        if ((n > cdi_devices)); then
            cdi_devices=$n
            cdi_spec=${f#"$root"}
        fi
    done
}
if [[ $cdi_required == true && $gpus_smi -gt 0 ]]; then
    deadline=$((SECONDS + cdi_wait))
    count_cdi
    while ((cdi_devices < gpus_pci && SECONDS < deadline)); do
        sleep 2
        count_cdi
    done
    if [[ -z $cdi_spec ]]; then
        fail "CDI is on but no CDI specification for nvidia.com/gpu is in /var/run/cdi or /etc/cdi"
    elif ((cdi_devices < gpus_pci)); then
        fail "the CDI specification $cdi_spec lists $cdi_devices devices for $gpus_pci GPUs"
    fi
fi

if ((${#failures[@]} == 0)); then
    message="$gpus_pci GPU(s), driver $loaded_version ($loaded_flavor)"
    [[ $cdi_required == true ]] && message+=", CDI $cdi_spec"
fi
finish

"""images.lock: what is installed, per profile and build, and what is promoted.

The file is YAML with sorted keys and one block per profile, so a change to one
profile is a small diff that does not conflict with a change to another. It is
always written whole and atomically (temporary file, fsync, rename) while an
exclusive lock on a sidecar file is held, so two builds finishing together both
land and a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from golden import ROOT, yamlfile
from golden.errors import GoldenError, shown
from golden.files import shown as _shown
from golden.profile import PROFILES, merged_data
from golden.workloads import NAME, WorkloadFacts

LOCK_VERSION = 1
LOCK_PATH = ROOT / "images.lock"
KEEP_BUILDS = 10
PROFILE_KEYS = {"inputs_sha256", "resolved", "builds", "channels"}
BUILD_KEYS = {"id", "time", "git_commit", "packer_version", "plugins", "target", "artifacts", "installed",
              "verification", "sbom_sha256", "status", "revoked", "packer_run_uuid", "boot_test",
              "inputs_sha256", "revoked_reason", "gpu", "driver", "workloads", "secure_boot"}
#: A Secure Boot build's signing certificate (golden/secureboot.py ``Signing.record``): public facts only.
SECURE_BOOT_KEYS = ("certificate_sha256", "signer", "serial", "per_build")
_CERT_SHA = re.compile(r"sha256:[0-9a-f]{64}")
_SERIAL = re.compile(r"[0-9A-F]{1,40}")
#: A local disk build's files under ``artifacts.disk``: the raw GPT disk, its qcow2, the OVMF store.
DISK_FILES = ("raw", "qcow2", "vars")
_HEX_SHA = re.compile(r"[0-9a-f]{64}")
#: A build's advertised workloads (golden/advertise.py), each with what the bake's probe measured.
BUILD_WORKLOAD_KEYS = ("name", "image", "digest", "cuda", "verdict", "probe")

Lock = dict[str, Any]

#: A build's boot test, the same shape for a QEMU boot (local) and an EC2 instance (AWS):
#: ``status`` is ``passed`` or ``failed``; the rest is what was measured where.
BOOT_TEST_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (str,), "time": (str,), "where": (str,), "guest_boot_s": (int, float, type(None)),
    "multi_user_s": (int, float, type(None)), "wall_s": (int, float), "checks": (int,), "failed": (int,),
    "failures": (list,), "kernel": (str,), "instance_type": (str,), "region": (str,), "ami": (str,),
    # Secure Boot profiles: what the booted kernel said (enforcing | off | unknown).
    "secure_boot": (str,),
}
BOOT_TEST_STATUSES = ("passed", "failed")


def empty() -> Lock:
    return {"lock_version": LOCK_VERSION, "profiles": {}}


def _fail(path: Path, key: str, message: str) -> GoldenError:
    return GoldenError(message, where=_shown(path), key=key)


def validate(data: Any, path: Path) -> Lock:
    """Check the lock's shape; errors name the key and what is allowed."""
    if not isinstance(data, dict):
        raise _fail(path, "(top)", "must be a mapping with lock_version and profiles")
    version = data.get("lock_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _fail(path, "lock_version", f"an integer from 1; this golden writes {LOCK_VERSION}; "
                                          f"got {shown(version)}")
    if version > LOCK_VERSION:
        raise _fail(path, "lock_version", f"{version} is newer than this golden understands ({LOCK_VERSION}); "
                                          "update golden")
    unknown = set(data) - {"lock_version", "profiles"}
    if unknown:
        raise _fail(path, sorted(unknown)[0], "unknown key; allowed: lock_version, profiles")
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise _fail(path, "profiles", "a mapping of profile name to its entry")
    for name, entry in profiles.items():
        where = f"profiles.{name}"
        if not isinstance(entry, dict):
            raise _fail(path, where, "a mapping with inputs_sha256, resolved, builds, channels")
        extra = set(entry) - PROFILE_KEYS
        if extra:
            raise _fail(path, f"{where}.{sorted(extra)[0]}", f"unknown key; allowed: {', '.join(sorted(PROFILE_KEYS))}")
        builds = entry.get("builds", [])
        if not isinstance(builds, list):
            raise _fail(path, f"{where}.builds", "a list of builds, newest first")
        for i, b in enumerate(builds):
            if not isinstance(b, dict) or not isinstance(b.get("id"), str):
                raise _fail(path, f"{where}.builds[{i}]", "a mapping with at least an id")
            extra = set(b) - BUILD_KEYS
            if extra:
                raise _fail(path, f"{where}.builds[{i}].{sorted(extra)[0]}",
                            f"unknown key; allowed: {', '.join(sorted(BUILD_KEYS))}")
            if "boot_test" in b:
                _validate_boot_test(b["boot_test"], path, f"{where}.builds[{i}].boot_test")
            _validate_advert(b, path, f"{where}.builds[{i}]")
            if "secure_boot" in b:
                _validate_secure_boot(b["secure_boot"], path, f"{where}.builds[{i}].secure_boot")
            if isinstance(b.get("artifacts"), dict) and "disk" in b["artifacts"]:
                _validate_disk(b["artifacts"]["disk"], path, f"{where}.builds[{i}].artifacts.disk")
        channels = entry.get("channels", {})
        if not isinstance(channels, dict) or not all(isinstance(v, str) for v in channels.values()):
            raise _fail(path, f"{where}.channels", "a mapping of channel name to build id")
        resolved = entry.get("resolved", {})
        if not isinstance(resolved, dict):
            raise _fail(path, f"{where}.resolved", "a mapping")
        if "workloads" in resolved:
            _validate_workloads(resolved["workloads"], path, f"{where}.resolved.workloads")
    data["profiles"] = profiles
    return data


def _validate_secure_boot(sb: Any, path: Path, where: str) -> None:
    """The certificate's fingerprint, signer, serial and whether it was made per build; never a key."""
    if not isinstance(sb, dict) or set(sb) != set(SECURE_BOOT_KEYS):
        raise _fail(path, where, f"a mapping of {', '.join(SECURE_BOOT_KEYS)}")
    if not isinstance(sb["certificate_sha256"], str) or not _CERT_SHA.fullmatch(sb["certificate_sha256"]):
        raise _fail(path, f"{where}.certificate_sha256",
                    f"sha256: and 64 hex digits; got {shown(sb['certificate_sha256'])}")
    if not isinstance(sb["serial"], str) or not _SERIAL.fullmatch(sb["serial"]):
        raise _fail(path, f"{where}.serial", f"upper-case hex, at most 40 digits; got {shown(sb['serial'])}")
    if not isinstance(sb["signer"], str) or not 0 < len(sb["signer"]) <= 128:
        raise _fail(path, f"{where}.signer", "the certificate's CN (text, at most 128 characters)")
    if not isinstance(sb["per_build"], bool):
        raise _fail(path, f"{where}.per_build", "true or false")


def _validate_disk(disk: Any, path: Path, where: str) -> None:
    """A local disk build's files (golden/targets/local_disk.py), each like ``artifacts.local``."""
    if not isinstance(disk, dict) or set(disk) != set(DISK_FILES):
        raise _fail(path, where, f"a mapping of {', '.join(DISK_FILES)}, each with path, sha256 and size")
    for key in DISK_FILES:
        f = disk[key]
        if not isinstance(f, dict) or set(f) != {"path", "sha256", "size"}:
            raise _fail(path, f"{where}.{key}", "a mapping of path, sha256 and size")
        if not isinstance(f["path"], str) or not f["path"]:
            raise _fail(path, f"{where}.{key}.path", "the file's path (text)")
        if not isinstance(f["sha256"], str) or not _HEX_SHA.fullmatch(f["sha256"]):
            raise _fail(path, f"{where}.{key}.sha256", f"64 lower-case hex digits; got {shown(f['sha256'])}")
        if isinstance(f["size"], bool) or not isinstance(f["size"], int) or f["size"] < 0:
            raise _fail(path, f"{where}.{key}.size", f"the file's size in bytes; got {shown(f['size'])}")


def _validate_boot_test(bt: Any, path: Path, where: str) -> None:
    if not isinstance(bt, dict):
        raise _fail(path, where, "a mapping with status (passed | failed) and what the boot measured")
    if bt.get("status") not in BOOT_TEST_STATUSES:
        raise _fail(path, f"{where}.status", f"one of {' | '.join(BOOT_TEST_STATUSES)}; got {bt.get('status')!r}")
    for key, value in bt.items():
        kinds = BOOT_TEST_FIELDS.get(key)
        if kinds is None:
            raise _fail(path, f"{where}.{key}", f"unknown key; allowed: {', '.join(sorted(BOOT_TEST_FIELDS))}")
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise _fail(path, f"{where}.{key}", f"a {names}; got {value!r}")


_BRANCH = re.compile(r"[0-9]{3}")
_CUDA = re.compile(r"[0-9]{1,2}\.[0-9]{1,2}(\.[0-9]{1,3})?")
_DRIVER_VERSION = re.compile(r"[0-9]{3}\.[0-9]{1,3}(\.[0-9]{1,3})?")


def _validate_advert(b: dict[str, Any], path: Path, where: str) -> None:
    """A build's ``gpu``, ``driver`` and ``workloads`` (what `invoke compat` judges images by)."""
    def text(value: Any, pattern: re.Pattern[str] | None, key: str, allowed: str, *, nullable: bool = True) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
            raise _fail(path, f"{where}.{key}", f"{allowed}; got {shown(value)}")

    if "gpu" in b:
        text(b["gpu"], re.compile(r"[a-z0-9][a-z0-9-]{0,40}"), "gpu", "a GPU key of golden/data/gpus.yaml",
             nullable=False)
    driver = b.get("driver")
    if driver is not None:
        if not isinstance(driver, dict) or set(driver) - {"branch", "version", "cuda_ceiling"}:
            raise _fail(path, f"{where}.driver", "null or a mapping of branch, version, cuda_ceiling")
        text(driver.get("branch"), _BRANCH, "driver.branch", "three digits, e.g. \"535\"", nullable=False)
        text(driver.get("version"), _DRIVER_VERSION, "driver.version", "a driver version, e.g. 535.261.03")
        text(driver.get("cuda_ceiling"), _CUDA, "driver.cuda_ceiling", "MAJOR.MINOR, e.g. 12.2")
    items = b.get("workloads", [])
    if not isinstance(items, list):
        raise _fail(path, f"{where}.workloads", "a list of workloads")
    for i, w in enumerate(items):
        at = f"workloads[{i}]"
        if not isinstance(w, dict) or set(w) != set(BUILD_WORKLOAD_KEYS):
            raise _fail(path, f"{where}.{at}", f"a mapping of {', '.join(BUILD_WORKLOAD_KEYS)}")
        text(w["name"], NAME, f"{at}.name", "a workload name")
        text(w["digest"], re.compile(r"sha256:[0-9a-f]{64}"), f"{at}.digest", "sha256:<64 hex> or null")
        text(w["cuda"], _CUDA, f"{at}.cuda", "MAJOR.MINOR or null")
        for key in ("image", "verdict"):
            text(w[key], None, f"{at}.{key}", "text or null")
        if w["probe"] is not None and not isinstance(w["probe"], dict):
            raise _fail(path, f"{where}.{at}.probe", "null or the probe's check (passed, result, detail)")


def _validate_workloads(items: Any, path: Path, where: str) -> None:
    """``resolved.workloads``: each workload pinned by digest with the CUDA facts its config
    showed, as :meth:`WorkloadFacts.from_json` reads them back."""
    if not isinstance(items, list):
        raise _fail(path, where, "a list of resolved workloads (name, image, digest, arch, cuda_version, "
                                 "require_cuda, compat)")
    keys = {f.name for f in dataclasses.fields(WorkloadFacts)}
    for i, w in enumerate(items):
        try:
            WorkloadFacts.from_json(w)
        except ValueError as exc:
            key, sep, why = str(exc).partition(": ")
            if sep and key in keys:
                raise _fail(path, f"{where}[{i}].{key}", why) from None
            raise _fail(path, f"{where}[{i}]", str(exc)) from None


def record_boot_test(lock: Lock, profile: str, build_id: str, result: dict[str, Any]) -> None:
    """Put a boot test's result into the build entry it tested (raises if there is none)."""
    for b in (lock["profiles"].get(profile) or {}).get("builds", []):
        if b["id"] == build_id:
            b["boot_test"] = result
            return
    raise GoldenError(f"no build {build_id} of {profile} to record the boot test in",
                      where="images.lock", key=f"profiles.{profile}.builds")


def load(path: Path = LOCK_PATH) -> Lock:
    """The lock (empty when there is none); at most 16 MiB, no duplicate keys, no aliases."""
    data = loads(read(path), path)
    return empty() if data is None else validate(data, path)


def read(path: Path) -> str:
    """The lock's text ("" when there is none), read as :mod:`golden.yamlfile` reads files."""
    if not os.path.lexists(path):
        return ""
    return yamlfile.read_text(path, _shown(path), limit=yamlfile.LOCK_LIMIT, what="lock file")


def loads(text: str, path: Path) -> Any:
    if len(text) > yamlfile.LOCK_LIMIT:
        raise _fail(path, "(top)", f"larger than the {yamlfile.LOCK_LIMIT >> 20} MiB a lock file may be")
    return yamlfile.loads(text, _shown(path)) if text.strip() else None


def dump(lock: Lock) -> str:
    header = ("# images.lock: written by golden (invoke build, lock.resolve, promote, revoke).\n"
              "# Review changes in pull requests; `git log -p images.lock` is the audit trail.\n")
    return header + yamlfile.dumps(lock)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory, fsync, rename, fsync the directory.

    The new file keeps the old one's mode (a new one gets 0644 less the umask);
    any failure (a full disk, an immutable file, a read-only directory) is one
    error line and leaves the old file as it was.
    """
    try:
        _write_atomic(path, text)
    except OSError as exc:
        raise _fail(path, "(write)", f"cannot write: {exc.strerror or type(exc).__name__}; "
                                     "the lock is unchanged") from None


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o644 & ~umask


def _write_atomic(path: Path, text: str) -> None:
    mode = _mode_for(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a directory")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the sidecar ``.images.lock.flock``; a symlink there is refused
    (O_NOFOLLOW), so the lock never creates or truncates a file somewhere else."""
    guard = path.with_name(f".{path.name}.flock")
    try:
        fd = os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        why = "a symbolic link: refused" if exc.errno == errno.ELOOP else exc.strerror or type(exc).__name__
        raise _fail(guard, "(lock)", f"cannot take the lock: {why}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _fail(guard, "(lock)", "cannot take the lock: not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def update(change: Callable[[Lock], None], path: Path = LOCK_PATH) -> Lock:
    """Read, change and write the lock while holding its file lock."""
    with _locked(path):
        lock = load(path)
        change(lock)
        validate(lock, path)
        write_atomic(path, dump(lock))
        return lock


def profile_entry(lock: Lock, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = lock["profiles"].setdefault(
        name, {"inputs_sha256": "", "resolved": {}, "builds": [], "channels": {}})
    return entry


def add_build(lock: Lock, name: str, build: dict[str, Any], *, inputs_sha256: str,
              keep: int = KEEP_BUILDS) -> None:
    """Record a build (newest first), keeping the last ``keep`` and every build a channel points at."""
    entry = profile_entry(lock, name)
    entry["inputs_sha256"] = inputs_sha256
    builds = [build, *[b for b in entry["builds"] if b["id"] != build["id"]]]
    pinned = set(entry["channels"].values())
    kept = [b for i, b in enumerate(builds) if i < keep or b["id"] in pinned]
    entry["builds"] = kept


# -- inputs hash ---------------------------------------------------------------

#: What an image's contents and checks are made from, besides the profile: the
#: knowledge base (a new point release or a corrected floor changes the image),
#: the code that turns a profile into packages and Packer input, the templates,
#: the scripts and the verification suite.
INPUT_DIRS = ("templates", "scripts", "verify", "golden/data")
INPUT_FILES = ("golden/plan.py", "golden/render.py")


def inputs_sha256(profile: str, root: Path | None = None, profiles_dir: Path = PROFILES) -> str:
    """sha256 over the merged profile, the files of INPUT_DIRS and INPUT_FILES.

    A change to any of them changes what an image would contain or how it is
    checked, so the lock must be refreshed (``invoke lock.check`` enforces it).
    """
    base = ROOT if root is None else root
    h = hashlib.sha256()
    h.update(json.dumps(merged_data(profile, profiles_dir), sort_keys=True).encode())
    files = [f for d in INPUT_DIRS for f in sorted((base / d).rglob("*"))]
    files += [base / f for f in INPUT_FILES]
    for f in files:
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(base)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()

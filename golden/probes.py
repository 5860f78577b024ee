"""Probes: a command run on the image plus a pure parser of what it prints.

The verification suite (``verify/``) runs the commands on the image through
testinfra and hands the text to the parsers here. The parsers never run
anything, so they are tested with captured output
(``tests/fixtures/probes/<probe>/<case>.txt`` beside the expected parse in
``<case>.json``); a new ``nvidia-smi`` header format is a new fixture, not new
test code.

>>> parse_smi_banner("| NVIDIA-SMI 580.95.05  Driver Version: 580.95.05  CUDA Version: 13.0 |")
SmiBanner(driver_version='580.95.05', cuda_ceiling='13.0')
>>> command("dpkg-query", "-W", "bash")
'LC_ALL=C dpkg-query -W bash'
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from golden import hostprobes
from golden.hostprobes import ProbeError as ProbeError

#: The apt pin priority golden's preferences file gives every pinned package:
#: above 1000 so that apt keeps (or moves to) the pinned version even where that
#: is a downgrade, and so it wins over NVIDIA's own pinning package (1000).
PIN_PRIORITY = 1001

#: The module's license when it is NVIDIA's open kernel module
#: (``MODULE_LICENSE("Dual MIT/GPL")`` in open-gpu-kernel-modules' nv.c).
OPEN_LICENSE = "Dual MIT/GPL"

#: ``systemctl is-enabled`` states that mean "starts at boot".
ENABLED_STATES = frozenset({"enabled", "enabled-runtime"})

#: What the boot checks read of ``nvidia-smi --query-gpu``, by the first branch that names the
#: driver's version that way. A field nvidia-smi no longer knows makes it reject the whole
#: query, so only these are asked. From R595 ``nvidia-smi --help-query-gpu`` marks
#: ``driver_version`` deprecated in favour of ``kmd_version`` (the R610 banner says
#: ``KMD Version``; /work/shared/facts/nvidia-facts.md section 6).
GPU_QUERY_ERAS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (595, ("index", "pci.bus_id", "kmd_version", "persistence_mode")),
    (0, ("index", "pci.bus_id", "driver_version", "persistence_mode")),
)

#: dpkg-query format: one line per package, tab-separated. ``binary:Package``
#: carries ``:amd64`` for Multi-Arch "same" packages; the parser splits it off.
DPKG_FORMAT = ("${binary:Package}\t${Version}\t${db:Status-Abbrev}\t${source:Package}"
               "\t${source:Version}\n")


def command(*argv: str) -> str:
    """One shell command line for a testinfra host: argv quoted, C locale.

    The C locale matters because apt, systemctl and modprobe translate what they
    print, and the parsers read the English words.
    """
    return "LC_ALL=C " + shlex.join(argv)


# -- commands ------------------------------------------------------------------------------------

def dpkg_query_argv(*names: str) -> tuple[str, ...]:
    """Every known package (no names) or the named ones, in :data:`DPKG_FORMAT`."""
    return ("dpkg-query", "-W", "-f", DPKG_FORMAT, *names)


def apt_policy_argv(name: str) -> tuple[str, ...]:
    return ("apt-cache", "policy", name)


SHOWHOLD_ARGV = ("apt-mark", "showhold")
SMI_ARGV = ("nvidia-smi",)
PROC_VERSION_PATH = "/proc/driver/nvidia/version"
#: The release manifest the bake writes (profile, versions, build id).
RELEASE_PATH = "/etc/golden/release.json"
#: What golden-gpu-check.service found at boot (see :func:`parse_gpu_check_status`).
GPU_CHECK_STATUS_PATH = "/var/lib/golden/gpu-check.json"
CTK_VERSION_ARGV = ("nvidia-ctk", "--version")
CDI_LIST_ARGV = ("nvidia-ctk", "cdi", "list")
FAILED_UNITS_ARGV = ("systemctl", "--failed", "--plain", "--no-legend", "--no-pager")
CLOUD_INIT_STATUS_ARGV = ("cloud-init", "status", "--long")
#: Kernels with a module tree: the directories under /lib/modules that a kernel
#: image package shipped (``modules.builtin``); leftovers from removed kernels lack it.
KERNELS_ARGV = ("find", "/lib/modules/", "-mindepth", "2", "-maxdepth", "2",
                "-name", "modules.builtin")


def gpu_fields(branch: str) -> tuple[str, ...]:
    """The :data:`GPU_QUERY_ERAS` fields for a driver branch (``"595"``)."""
    return next(fields for since, fields in GPU_QUERY_ERAS if int(branch) >= since)


def gpu_query_argv(branch: str) -> tuple[str, ...]:
    return ("nvidia-smi", f"--query-gpu={','.join(gpu_fields(branch))}",
            "--format=csv,noheader,nounits")


def modinfo_argv(kernel: str, module: str) -> tuple[str, ...]:
    return ("modinfo", "-k", kernel, module)


def nvcc_argv(toolkit: str) -> tuple[str, ...]:
    """The toolkit's own nvcc, not whatever ``/usr/local/cuda`` points at."""
    return (f"/usr/local/cuda-{toolkit}/bin/nvcc", "--version")


def is_enabled_argv(unit: str) -> tuple[str, ...]:
    return ("systemctl", "is-enabled", unit)


def is_active_argv(unit: str) -> tuple[str, ...]:
    return ("systemctl", "is-active", unit)


# -- parsers: NVIDIA -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SmiBanner:
    driver_version: str
    cuda_ceiling: str


_SMI_DRIVER = re.compile(r"(?:Driver|KMD) Version:\s*(\d+\.\d+(?:\.\d+)?)")
_SMI_CUDA = re.compile(r"CUDA(?: UMD)? Version:\s*(\d+\.\d+)")


def parse_smi_banner(text: str) -> SmiBanner:
    """The ``nvidia-smi`` banner, both the classic and the R610+ field names.

    ``Driver Version:``/``CUDA Version:`` up to R595, ``KMD Version:``/``CUDA UMD
    Version:`` from R610. The CUDA number is the driver's ceiling, not a toolkit.
    """
    driver, cuda = _SMI_DRIVER.search(text), _SMI_CUDA.search(text)
    if not driver or not cuda:
        raise ProbeError("no 'Driver/KMD Version' and 'CUDA (UMD) Version' in nvidia-smi output: "
                         + _head(text))
    return SmiBanner(driver.group(1), cuda.group(1))


@dataclass(frozen=True)
class GpuRow:
    """One GPU in a ``--query-gpu`` answer: its fields, or why nvidia-smi could not read it."""

    gpu: str                    # the index, or the PCI address when only that is known
    fields: dict[str, str]
    error: str | None = None

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("driver_version",)

    @property
    def driver_version(self) -> str | None:
        return self.fields.get("kmd_version") or self.fields.get("driver_version")


#: nvidia-smi's line for a GPU it cannot open; the others are still listed.
_GPU_HANDLE_ERROR = re.compile(r"^Unable to determine the device handle for (?:GPU)?(\S+?):? (.+)$")
#: Values nvidia-smi puts in a field it could not read for that GPU.
_GPU_VALUE_ERRORS = ("[Unknown Error]", "[GPU requires reset]", "[GPU is lost]")


def parse_gpu_query(text: str, fields: tuple[str, ...] = GPU_QUERY_ERAS[-1][1]) -> list[GpuRow]:
    """``nvidia-smi --query-gpu=FIELDS --format=csv,noheader,nounits`` (stdout and stderr).

    A GPU that nvidia-smi cannot read is a :class:`GpuRow` with ``error`` set,
    not a failure of the whole answer; the other GPUs keep their rows.
    """
    gpus = []
    for line in _lines(text):
        if line.startswith("No devices were found"):
            return []
        if m := _GPU_HANDLE_ERROR.match(line):
            gpus.append(GpuRow(m.group(1), {}, m.group(2).strip()))
            continue
        values = line.split(", ")
        if len(values) != len(fields):
            raise ProbeError(f"expected {len(fields)} fields in nvidia-smi csv row: {line!r}")
        row = dict(zip(fields, values, strict=True))
        bad = [f"{k}: {v}" for k, v in row.items() if v in _GPU_VALUE_ERRORS]
        gpus.append(GpuRow(row.get("index", values[0]), row, "; ".join(bad) or None))
    return gpus


def parse_gpu_query_r595(text: str) -> list[GpuRow]:
    """:func:`parse_gpu_query` with the R595+ fields (``kmd_version``)."""
    return parse_gpu_query(text, gpu_fields("595"))


@dataclass(frozen=True)
class ProcVersion:
    open: bool
    version: str
    arch: str


_VERSION = r"(\d+\.\d+(?:\.\d+)?)"
_PROC_OPEN = re.compile(r"NVRM version: NVIDIA UNIX Open Kernel Module for (\S+)\s+" + _VERSION)
_PROC_PROPRIETARY = re.compile(r"NVRM version: NVIDIA UNIX (\S+) Kernel Module\s+" + _VERSION)


def parse_proc_version(text: str) -> ProcVersion:
    """Line 1 of ``/proc/driver/nvidia/version``: open or not, version, architecture."""
    first = text.splitlines()[0] if text.strip() else ""
    if m := _PROC_OPEN.search(first):
        return ProcVersion(True, m.group(2), m.group(1))
    if m := _PROC_PROPRIETARY.search(first):
        return ProcVersion(False, m.group(2), m.group(1))
    raise ProbeError(f"not an NVRM version line: {_head(text)}")


@dataclass(frozen=True)
class Modinfo:
    filename: str | None
    version: str | None
    license: str | None
    vermagic: str | None
    signer: str | None

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("open", "vermagic_kernel")

    @property
    def open(self) -> bool:
        return self.license == OPEN_LICENSE

    @property
    def vermagic_kernel(self) -> str | None:
        """The kernel the module was built for: the first word of ``vermagic``."""
        return self.vermagic.split()[0] if self.vermagic else None


def parse_modinfo(text: str) -> Modinfo:
    """``modinfo [-k KVER] MODULE`` (all fields): the ones verification reads.

    Lines are ``field:<spaces>value``; the signature continues on lines that
    start with a tab, and repeated fields (``alias``, ``parm``) are not needed.
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line[0].isspace() or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if "filename" not in fields and "version" not in fields:
        raise ProbeError(f"not modinfo output: {_head(text)}")
    return Modinfo(*(fields.get(k) or None for k in
                     ("filename", "version", "license", "vermagic", "signer")))


@dataclass(frozen=True)
class NvccVersion:
    release: str        # "13.0": what cuda-toolkit-13-0 installs
    version: str        # "13.0.88"


_NVCC = re.compile(r"release (\d+\.\d+), V(\d+\.\d+\.\d+)")


def parse_nvcc(text: str) -> NvccVersion:
    """``nvcc --version``: the version is on the line before the last (``Build …``)."""
    if m := _NVCC.search(text):
        return NvccVersion(m.group(1), m.group(2))
    raise ProbeError(f"no 'release X.Y, VX.Y.Z' in nvcc output: {_head(text)}")


def parse_ctk_version(text: str) -> str:
    """``nvidia-ctk --version``: ``NVIDIA Container Toolkit CLI version 1.20.0`` then a commit."""
    if m := re.search(r"CLI version ([\d.]+\d)", text):
        return m.group(1)
    raise ProbeError(f"no 'CLI version' in nvidia-ctk output: {_head(text)}")


_CDI_DEVICE = re.compile(r"^[a-z0-9.-]+/[a-z0-9._-]+=\S+$", re.IGNORECASE)


def parse_cdi_list(text: str) -> list[str]:
    """``nvidia-ctk cdi list``: the fully-qualified device names (``nvidia.com/gpu=0``).

    The ``Found N CDI devices`` log line goes to stderr, but a caller that merges
    the streams gets it too; anything that is not a device name is skipped.
    """
    return [line for line in _lines(text) if _CDI_DEVICE.match(line)]


# -- parsers: Debian packages --------------------------------------------------------------------

@dataclass(frozen=True)
class DebPackage:
    name: str
    arch: str | None        # only when dpkg printed it (Multi-Arch "same")
    version: str
    status: str             # db:Status-Abbrev, three characters: "ii ", "hi ", "rc "
    source: str
    source_version: str

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("installed",)

    @property
    def installed(self) -> bool:
        """Installed and configured, whether held (``hi``) or not (``ii``).

        The first letter is the selection (install, hold, deinstall, purge), so a
        package golden holds reads ``hi``; the second says it is installed, the
        third (a space) that it needs no reinstall.
        """
        return len(self.status) == 3 and self.status[1] == "i" and self.status[2] == " "

    @property
    def present(self) -> bool:
        """Anything left on disk beyond config files (half-installed counts)."""
        return len(self.status) >= 2 and self.status[1] not in "nc"


def parse_dpkg(text: str) -> list[DebPackage]:
    """``dpkg-query -W -f DPKG_FORMAT``: one :class:`DebPackage` per line.

    Packages dpkg knows of but never installed print an empty version; they are
    kept (status ``un``) so a caller can tell "unknown" from "not installed".
    """
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 5:
            raise ProbeError(f"expected 5 tab-separated fields from dpkg-query: {line!r}")
        full, version, status, source, source_version = parts
        name, _, arch = full.partition(":")
        out.append(DebPackage(name, arch or None, version, status, source or name,
                              source_version or version))
    return out


def parse_showhold(text: str) -> set[str]:
    """``apt-mark showhold``: held package names (any ``:arch`` suffix dropped)."""
    return {line.split(":")[0] for line in _lines(text)}


@dataclass(frozen=True)
class PolicyVersion:
    version: str
    priority: int
    installed: bool


@dataclass(frozen=True)
class AptPolicy:
    package: str
    installed: str | None
    candidate: str | None
    versions: tuple[PolicyVersion, ...]

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("pin_effective",)

    def priority_of(self, version: str) -> int | None:
        return next((v.priority for v in self.versions if v.version == version), None)

    def pin_effective(self, priority: int = PIN_PRIORITY) -> bool:
        """apt keeps what is installed: it is the candidate, at the pin's priority."""
        return (self.installed is not None and self.candidate == self.installed
                and self.priority_of(self.installed) == priority)


_POLICY_VERSION = re.compile(r"^ (\*\*\*| {3}) (\S+) (-?\d+)$")


def parse_apt_policy(text: str) -> dict[str, AptPolicy]:
    """``apt-cache policy PKG…``: installed, candidate and the version table per package.

    In the table the number after a version is the priority apt gives that
    version, pins included (``*** 535.261.03-1~deb12u1 1001``); the indented lines
    below it are where the version comes from and are not needed here.
    """
    out: dict[str, AptPolicy] = {}
    name: str | None = None
    fields: dict[str, str | None] = {}
    versions: list[PolicyVersion] = []

    def flush() -> None:
        if name is not None:
            out[name] = AptPolicy(name, fields.get("Installed"), fields.get("Candidate"),
                                  tuple(versions))

    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            flush()
            name, fields, versions = line[:-1], {}, []
        elif m := re.match(r"^  (Installed|Candidate): (.*)$", line):
            value = m.group(2).strip()
            fields[m.group(1)] = None if value == "(none)" else value
        elif m := _POLICY_VERSION.match(line):
            versions.append(PolicyVersion(m.group(2), int(m.group(3)), m.group(1) == "***"))
    flush()
    return out


# -- parsers: container runtimes -----------------------------------------------------------------

def parse_docker_runtimes(text: str) -> list[str]:
    """``/etc/docker/daemon.json``: the names under ``runtimes`` (``nvidia`` once configured)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProbeError(f"daemon.json is not JSON: {e}") from None
    runtimes = data.get("runtimes") if isinstance(data, dict) else None
    return sorted(runtimes) if isinstance(runtimes, dict) else []


#: Where a runtime lives in a containerd (config v2, v3) or CRI-O TOML file.
_TOML_RUNTIME_TABLES = (
    ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes"),   # containerd 1.x, v2
    ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes"),  # containerd 2.x, v3
    ("crio", "runtime", "runtimes"),
)


def parse_toml_runtimes(text: str) -> list[str]:
    """A containerd config or drop-in (``conf.d/99-nvidia.toml``): the runtime names defined."""
    try:
        data: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProbeError(f"not TOML: {e}") from None
    plugins = data.get("plugins")
    if (isinstance(plugins, dict) and "cri" in plugins) or data.get("version") == 1:
        # containerd reads a version 1 file with other table names (plugins.cri…); read as
        # version 2 it would look like a config without runtimes.
        raise ProbeError("containerd config version 1 (plugins.cri): not read; golden configures "
                         "version 2 (plugins.\"io.containerd.grpc.v1.cri\") or 3")
    names: set[str] = set()
    for path in _TOML_RUNTIME_TABLES:
        node = data
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            names.update(node)
    return sorted(names)


def parse_toml_imports(text: str) -> list[str]:
    """A containerd config's ``imports``: the files (or globs) it reads after itself."""
    try:
        data: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProbeError(f"not TOML: {e}") from None
    imports = data.get("imports")
    return [str(i) for i in imports] if isinstance(imports, list) else []


def parse_runtime_config(path: str, text: str) -> list[str]:
    """The runtimes a runtime config defines; JSON for Docker, TOML otherwise."""
    return parse_docker_runtimes(text) if path.endswith(".json") else parse_toml_runtimes(text)


# -- parsers: systemd, cloud-init, kmod ----------------------------------------------------------

def parse_unit_state(text: str, missing: str = "not-found") -> str:
    """``systemctl is-enabled|is-active UNIT``: the one word (``enabled``, ``static``, …).

    ``is-enabled`` prints nothing on stdout for a unit systemd does not know
    (the complaint goes to stderr); that reads as ``missing``.
    """
    words = text.split()
    return words[0] if words else missing


def parse_failed_units(text: str) -> list[str]:
    """``systemctl --failed --plain --no-legend``: the failed unit names.

    Without ``--plain`` each line starts with a bullet (``●``); it is skipped.
    """
    units = []
    for line in _lines(text):
        words = [w for w in line.split() if w not in ("●", "*")]
        if words and "." in words[0]:
            units.append(words[0])
    return units


@dataclass(frozen=True)
class CloudInitStatus:
    status: str
    errors: tuple[str, ...]

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("ok",)

    @property
    def ok(self) -> bool:
        return self.status == "done" and not self.errors


def parse_cloud_init_status(text: str) -> CloudInitStatus:
    """``cloud-init status --long``: the status word and any errors.

    Newer cloud-init prints ``errors: []`` or an ``errors:`` key followed by
    ``- message`` items; older releases print no ``errors`` key when there are
    none and report a failure as ``status: error``.
    """
    status: str | None = None
    errors: list[str] = []
    in_errors = False
    for line in text.splitlines():
        if m := re.match(r"^status:\s*(.+?)\s*$", line):
            status = m.group(1)
        if m := re.match(r"^errors:\s*(.*)$", line):
            in_errors = True
            inline = m.group(1).strip()
            if inline not in ("", "[]"):
                errors += [e.strip(" '\"") for e in inline.strip("[]").split(",") if e.strip()]
            continue
        if in_errors:
            if m := re.match(r"^\s+-\s*(.+)$", line):
                errors.append(m.group(1).strip())
                continue
            in_errors = False
    if status is None:
        raise ProbeError(f"no 'status:' in cloud-init status output: {_head(text)}")
    return CloudInitStatus(status, tuple(errors))


#: What modprobe says when a module is fine but there is nothing for it to drive.
_NO_DEVICE = ("No such device", "No NVIDIA GPU found")
#: What it says when the module itself is broken (wrong kernel, missing symbols).
_BAD_MODULE = ("Invalid module format", "Exec format error", "Unknown symbol", "version magic",
               "disagrees about version")


def classify_modprobe(text: str) -> str:
    """What a ``modprobe MODULE`` failure (stderr, plus dmesg lines if given) means.

    ``loaded`` (nothing said), ``no-device`` (the module is good, there is no
    GPU), ``bad-module`` (it does not fit the kernel), ``missing`` (not installed
    for this kernel) or ``other``. A bad-module sign wins over a no-device one.
    """
    if any(s in text for s in _BAD_MODULE):
        return "bad-module"
    if re.search(r"Module \S+ not found", text):
        return "missing"
    if any(s in text for s in _NO_DEVICE):
        return "no-device"
    return "loaded" if not text.strip() else "other"


def parse_gpu_check_status(text: str) -> str:
    """The boot check's status file: JSON with a ``status`` key, or the first word."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise ProbeError(f"gpu-check status is not JSON: {e}") from None
        if isinstance(data, dict) and isinstance(data.get("status"), str):
            return str(data["status"])
        raise ProbeError("gpu-check status JSON has no 'status' string")
    if not stripped:
        raise ProbeError("gpu-check status file is empty")
    return stripped.split()[0]


def parse_kernels(text: str) -> list[str]:
    """Output of :data:`KERNELS_ARGV`: the kernel versions, sorted."""
    return sorted({p.rstrip("/").split("/")[-2] for p in _lines(text) if p.count("/") >= 2})


# -- helpers -------------------------------------------------------------------------------------

def _lines(text: str) -> Iterable[str]:
    return (line.strip() for line in text.splitlines() if line.strip())


def _head(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return repr(first[:120]) if first else "(empty)"


def to_json(value: Any) -> Any:
    """A parse result as plain JSON data (dataclasses as dicts, sets sorted).

    A dataclass's ``JSON_PROPERTIES`` (derived answers such as ``installed``)
    are included, so a fixture states them too.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
        names += list(getattr(value, "JSON_PROPERTIES", ()))
        return {n: to_json(_call(getattr(value, n))) for n in names}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(to_json(v) for v in value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def _call(attr: Any) -> Any:
    return attr() if callable(attr) else attr


#: Fixture directory name -> parser, for the fixture-driven tests.
PARSERS: dict[str, Callable[[str], Any]] = {
    "nvidia-smi-banner": parse_smi_banner,
    "nvidia-smi-query-gpu": parse_gpu_query,
    "nvidia-smi-query-gpu-r595": parse_gpu_query_r595,
    "proc-driver-version": parse_proc_version,
    "modinfo": parse_modinfo,
    "nvcc-version": parse_nvcc,
    "nvidia-ctk-version": parse_ctk_version,
    "nvidia-ctk-cdi-list": parse_cdi_list,
    "dpkg-query": parse_dpkg,
    "apt-mark-showhold": parse_showhold,
    "apt-cache-policy": parse_apt_policy,
    "docker-daemon-json": parse_docker_runtimes,
    "containerd-toml": parse_toml_runtimes,
    "systemctl-is-enabled": parse_unit_state,
    "systemctl-failed": parse_failed_units,
    "cloud-init-status": parse_cloud_init_status,
    "modprobe": classify_modprobe,
    "gpu-check-status": parse_gpu_check_status,
    "kernels": parse_kernels,
    "boot-kernels": hostprobes.parse_boot_kernels,
    "modprobe-showconfig": hostprobes.parse_modprobe_config,
    "keyctl-show": hostprobes.parse_keyctl_show,
    "proc-keys": hostprobes.parse_proc_keys,
    "ldconfig": hostprobes.parse_ldconfig,
}

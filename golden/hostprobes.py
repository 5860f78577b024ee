"""Probes of what the image would boot with: kernels, modules, modprobe, trusted keys, libraries.

Like every probe (:mod:`golden.probes`), each is a command plus a pure parser
of what it prints.

>>> parse_boot_kernels("/boot/vmlinuz-6.1.0-50-cloud-amd64\\n")
['6.1.0-50-cloud-amd64']
>>> library_version("libcuda.so.1", "/usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.535.261.03")
'535.261.03'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from golden.probes import ProbeError, head, nonblank_lines

#: The module's license when it is NVIDIA's open kernel module
#: (``MODULE_LICENSE("Dual MIT/GPL")`` in open-gpu-kernel-modules' nv.c).
OPEN_LICENSE = "Dual MIT/GPL"

#: Kernels with a module tree: the directories under /lib/modules that a kernel
#: image package shipped (``modules.builtin``); leftovers from removed kernels lack it.
KERNELS_ARGV = ("find", "/lib/modules/", "-mindepth", "2", "-maxdepth", "2",
                "-name", "modules.builtin")

#: Kernel images a bootloader can boot: plain files (``/boot/vmlinuz`` and
#: ``vmlinuz.old`` are symlinks to them and are skipped).
BOOT_KERNELS_ARGV = ("find", "/boot/", "-maxdepth", "1", "-type", "f", "-name", "vmlinuz-*")
#: The effective modprobe configuration (every modprobe.d directory, in kmod's order).
MODPROBE_CONFIG_ARGV = ("modprobe", "--showconfig")
#: The dynamic linker's cache: what a program (or the container toolkit) resolves a soname to.
LDCONFIG_ARGV = ("ldconfig", "-p")
PROC_KEYS_PATH = "/proc/keys"
#: The keyrings the kernel verifies module signatures against: the built-in keys,
#: the secondary keyring and the machine keyring (MOKs, linked into the secondary
#: one since Linux 5.19). ``.platform`` holds firmware (UEFI db) keys, which the
#: kernel uses for kexec and IMA only, never for modules.
MODULE_KEYRINGS = (".builtin_trusted_keys", ".secondary_trusted_keys", ".machine")
PLATFORM_KEYRING = ".platform"
KEYRINGS = (*MODULE_KEYRINGS, PLATFORM_KEYRING)


def modinfo_argv(kernel: str, module: str) -> tuple[str, ...]:
    return ("modinfo", "-k", kernel, module)


def keyctl_show_argv(keyring: str) -> tuple[str, ...]:
    """keyutils' ``keyctl show %:NAME``: the keys linked into a named keyring."""
    return ("keyctl", "show", f"%:{keyring}")


def firmware_argv(version: str) -> tuple[str, ...]:
    """The GSP firmware files the open module loads for ``version`` (``firmware:`` in modinfo)."""
    return ("find", f"/lib/firmware/nvidia/{version}/", "-maxdepth", "1", "-name", "gsp_*.bin")


# -- kernels -------------------------------------------------------------------------------------

def parse_kernels(text: str) -> list[str]:
    """Output of :data:`KERNELS_ARGV`: the kernel versions, sorted."""
    trees = (p.rstrip("/") for p in nonblank_lines(text) if p.count("/") >= 2)
    return sorted({p.split("/")[-2] for p in trees})


def parse_boot_kernels(text: str) -> list[str]:
    """Output of :data:`BOOT_KERNELS_ARGV`: the kernel releases with an image in /boot, sorted."""
    names = (line.rsplit("/", 1)[-1] for line in nonblank_lines(text))
    return sorted({n.removeprefix("vmlinuz-") for n in names if n.startswith("vmlinuz-")})


_ABI = re.compile(r"^\d+\.\d+\.\d+")


def kernels_from_packages(names: Iterable[str]) -> list[str]:
    """Kernel releases of installed ``linux-image-<release>`` packages (metapackages skipped).

    ``linux-image-6.1.0-50-cloud-amd64`` -> ``6.1.0-50-cloud-amd64``; Debian's
    ``…-unsigned`` builds and Ubuntu's ``linux-image-unsigned-…`` name the same kernel.
    """
    out = set()
    for name in names:
        rest = name.removeprefix("linux-image-").removeprefix("unsigned-").removesuffix("-unsigned")
        if name.startswith("linux-image-") and _ABI.match(rest):
            out.add(rest)
    return sorted(out)


def bootable_kernels(pinned: str | None, module_trees: Iterable[str], boot_images: Iterable[str],
                     packaged: Iterable[str]) -> list[str]:
    """Every kernel the module must exist for: the pinned one and any other the image can boot.

    A pinned kernel does not narrow this: a second kernel installed after the
    module was built is booted by a bootloader that picks the newest, so it is
    checked (and fails without a module) like any other.
    """
    return sorted({*([pinned] if pinned else []), *module_trees, *boot_images, *packaged})


# -- kernel modules ------------------------------------------------------------------------------

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
        raise ProbeError(f"not modinfo output: {head(text)}")
    return Modinfo(*(fields.get(k) or None for k in
                     ("filename", "version", "license", "vermagic", "signer")))


#: What modprobe says when a module is fine but there is nothing for it to drive.
_NO_DEVICE = ("No such device", "No NVIDIA GPU found")
#: What modprobe and the kernel log say when the module itself is broken (wrong kernel,
#: missing symbols); also what the boot test looks for in the guest's serial console.
BAD_MODULE = ("Invalid module format", "Exec format error", "Unknown symbol", "version magic",
              "disagrees about version")


def classify_modprobe(text: str) -> str:
    """What a ``modprobe MODULE`` failure (stderr, plus dmesg lines if given) means.

    ``loaded`` (nothing said), ``no-device`` (the module is good, there is no
    GPU), ``bad-module`` (it does not fit the kernel), ``missing`` (not installed
    for this kernel) or ``other``. A bad-module sign wins over a no-device one.
    """
    if bad_module_lines(text):
        return "bad-module"
    if re.search(r"Module \S+ not found", text):
        return "missing"
    if any(s in text for s in _NO_DEVICE):
        return "no-device"
    return "loaded" if not text.strip() else "other"


def bad_module_lines(text: str) -> list[str]:
    """The lines of modprobe's output or a kernel log that say a module does not fit the kernel.

    >>> bad_module_lines("NVRM: No NVIDIA GPU found.\\nnvidia: version magic '6.1.0-9' should be '6.1.0-50'")
    ["nvidia: version magic '6.1.0-9' should be '6.1.0-50'"]
    >>> bad_module_lines("Failed to execute /usr/bin/x: Exec format error")
    []
    >>> len(bad_module_lines("modprobe: ERROR: could not insert 'nvidia': Exec format error"))
    1
    """
    return [line for line in text.splitlines()
            if any(s in line for s in BAD_MODULE)
            # ENOEXEC is also what a broken program gets; only a module's is the module's.
            and ("Exec format error" not in line or "insert" in line or "module" in line)]


# -- modprobe configuration ----------------------------------------------------------------------

@dataclass(frozen=True)
class ModprobeConfig:
    """``modprobe --showconfig``: blacklists and install commands, by normalized module name."""

    blacklist: frozenset[str]
    install: dict[str, str] = field(default_factory=dict)
    #: ``options MODULE ARGS``: every option word given a module, by normalized name.
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def problems(self, names: Iterable[str]) -> list[str]:
        """Why one of the driver's modules (by file or own name) would not load, if it would not.

        A blacklist stops loading by alias (udev, at boot). An ``install`` line
        replaces loading: it is refused unless its command still runs modprobe
        (Debian's own ``install nvidia modprobe -i nvidia-current-open …`` does).
        """
        out = []
        for name in sorted({normalize_module(n) for n in names}):
            if name in self.blacklist:
                out.append(f"blacklist {name}")
            command = self.install.get(name)
            if command is not None and not any(w.rsplit("/", 1)[-1] == "modprobe"
                                               for w in command.split()):
                out.append(f"install {name} {command}")
        return out


def normalize_module(name: str) -> str:
    """kmod's name for a module: dashes read as underscores (``nvidia-current-open``)."""
    return name.replace("-", "_")


def parse_modprobe_config(text: str) -> ModprobeConfig:
    """``modprobe --showconfig``: stops at kmod's ``# End of configuration files`` marker."""
    blacklist: set[str] = set()
    install: dict[str, str] = {}
    options: dict[str, tuple[str, ...]] = {}
    for line in nonblank_lines(text):
        if line.startswith("# End of configuration files"):
            break
        words = line.split(None, 2)
        if len(words) >= 2 and words[0] == "blacklist":
            blacklist.add(normalize_module(words[1]))
        elif len(words) == 3 and words[0] == "install":
            install[normalize_module(words[1])] = words[2]
        elif len(words) == 3 and words[0] == "options":
            name = normalize_module(words[1])
            options[name] = (*options.get(name, ()), *words[2].split())
    return ModprobeConfig(frozenset(blacklist), install, options)


# -- an image without a driver -------------------------------------------------------------------

#: NVIDIA kernel modules for any installed kernel, in both module trees (/lib is not
#: /usr/lib on every image); a driverless image has none.
NVIDIA_MODULE_FILES_ARGV = ("find", "/lib/modules/", "/usr/lib/modules/", "-name", "nvidia*.ko*")
#: The modules loaded now.
LSMOD_ARGV = ("lsmod",)


def parse_module_files(text: str) -> list[str]:
    """find's output: each module file by its path below ``modules/`` (``KVER/.../nvidia.ko``),
    once: on a merged-/usr image both trees are one.

    >>> parse_module_files("/lib/modules/6.1.0-50-cloud-amd64/updates/dkms/nvidia.ko.xz\n"
    ...                    "/usr/lib/modules/6.1.0-50-cloud-amd64/updates/dkms/nvidia.ko.xz\n")
    ['6.1.0-50-cloud-amd64/updates/dkms/nvidia.ko.xz']
    """
    return sorted({line.split("/modules/", 1)[-1] for line in nonblank_lines(text)})


def only_missing_trees(stderr: str) -> bool:
    """find's complaints are only about a module tree that is not there (no /usr/lib/modules)."""
    return all("No such file or directory" in line for line in nonblank_lines(stderr))


def parse_lsmod(text: str) -> list[str]:
    """``lsmod``: the loaded modules' names, its header line skipped.

    >>> parse_lsmod("Module                  Size  Used by\nnouveau  2314240  0\n")
    ['nouveau']
    """
    lines = list(nonblank_lines(text))
    if lines and lines[0].startswith("Module "):
        lines = lines[1:]
    return sorted({line.split()[0] for line in lines})


# -- keys the kernel trusts ----------------------------------------------------------------------

@dataclass(frozen=True)
class TrustedKey:
    """An X.509 key in a kernel keyring: its subject name and key identifier (hex)."""

    keyring: str | None     # None: read from /proc/keys, which does not say which ring
    name: str
    key_id: str

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("trusts_modules",)

    @property
    def trusts_modules(self) -> bool:
        return self.keyring != PLATFORM_KEYRING


# An asymmetric key's description is "<subject CN>: <subject key identifier, hex>".
_KEY_DESC = re.compile(r"^(.+?): ([0-9a-f]{8,})\b")
_KEYCTL_KEY = re.compile(r"^\s*\d+\s+\S+\s+\S+\s+\S+\s+[ |]*\\_ asymmetric: (.+)$")
_PROC_KEY = re.compile(r"^[0-9a-f]{8} \S+\s+\d+\s+\S+\s+[0-9a-f]{8}\s+\d+\s+\d+ asymmetri (.+)$")


def parse_keyctl_show(text: str) -> list[TrustedKey]:
    """``keyctl show %:KEYRING``: the asymmetric keys linked into it or a keyring below it.

    Lines look like ``936279598 ---lswrv      0     0   \\_ asymmetric: Debian
    Secure Boot CA: 6ccece7e…``; a key belongs to the nearest keyring line above
    it (``\\_ keyring: .machine`` linked into ``.secondary_trusted_keys``).
    """
    ring: str | None = None
    keys = []
    for line in text.splitlines():
        if m := re.search(r"keyring: (\S+)", line):
            ring = m.group(1)
        if (m := _KEYCTL_KEY.match(line)) and (d := _KEY_DESC.match(m.group(1))):
            keys.append(TrustedKey(ring, d.group(1), d.group(2)))
    if not keys and "keyring:" not in text:
        raise ProbeError(f"not keyctl show output: {head(text)}")
    return keys


def parse_proc_keys(text: str) -> list[TrustedKey]:
    """``/proc/keys`` (root sees the system keyrings' keys): every asymmetric key.

    The type column is cut to nine characters (``asymmetri``); the description
    is followed by ``: X509.rsa <last 4 bytes of the id> []``.
    """
    keys = []
    for line in text.splitlines():
        if (m := _PROC_KEY.match(line)) and (d := _KEY_DESC.match(m.group(1))):
            keys.append(TrustedKey(None, d.group(1), d.group(2)))
    return keys


@dataclass(frozen=True)
class SignatureVerdict:
    trusted: bool
    detail: str


def signature_verdict(signer: str | None, sig_key: str | None,
                      keys: Iterable[TrustedKey]) -> SignatureVerdict:
    """Whether a module's own signature (``modinfo -F signer``/``sig_key``) is one the kernel trusts.

    The key matches by identifier when ``sig_key`` is the key's subject key
    identifier, else by the signer's name (kmod reports a PKCS#7 signer by its
    certificate's name and serial number, which the keyring does not show).
    A key found only in ``.platform`` does not count: modules are not checked
    against it.
    """
    if not signer:
        return SignatureVerdict(False, "the module is not signed")
    wanted = (sig_key or "").replace(":", "").lower()
    keys = list(keys)
    for by_id in (True, False):
        for key in keys:
            if (wanted and key.key_id == wanted) if by_id else key.name == signer:
                how = "key id" if by_id else "signer name"
                ring = key.keyring or "a system keyring (/proc/keys)"
                if not key.trusts_modules:
                    return SignatureVerdict(False, f"{signer}: only in {ring}, which the kernel "
                                                   "does not verify modules against")
                return SignatureVerdict(True, f"{key.name} in {ring} (matched by {how})")
    return SignatureVerdict(False, f"no key for {signer} (sig_key {sig_key or 'none'}) "
                                   f"among {len(keys)} trusted key(s)")


# -- libraries and firmware ----------------------------------------------------------------------

def parse_ldconfig(text: str) -> dict[str, str]:
    """``ldconfig -p``: soname -> path, for the native ABI (the first entry per soname wins)."""
    out: dict[str, str] = {}
    for line in nonblank_lines(text):
        m = re.match(r"^(\S+) \(([^)]*)\) => (\S+)$", line)
        if m and m.group(1) not in out:
            out[m.group(1)] = m.group(3)
    if not out and "libs found in cache" not in text:
        raise ProbeError(f"not ldconfig -p output: {head(text)}")
    return out


def library_version(soname: str, real_path: str) -> str | None:
    """The driver version in a library's real file name (``libcuda.so.535.261.03``), if any."""
    stem = soname.split(".so", 1)[0] + ".so."
    base = real_path.rstrip().rsplit("/", 1)[-1]
    return base.removeprefix(stem) if base.startswith(stem) and base != soname else None


#: The firmware's ``SecureBoot`` variable (EFI global variable GUID), as efivarfs shows it:
#: four bytes of attributes, then one byte, 1 when the firmware enforces Secure Boot.
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
SECURE_BOOT_ARGV = ("od", "-An", "-tu1", "-v", SECURE_BOOT_VAR)
#: Present only when the kernel was started by UEFI firmware.
EFI_DIR = "/sys/firmware/efi"


def parse_secure_boot(od_output: str) -> str:
    """``enforcing``, ``off`` or ``unknown`` from ``od -An -tu1`` of the SecureBoot variable.

    >>> parse_secure_boot(" 6 0 0 0 1\\n"), parse_secure_boot(" 6 0 0 0 0"), parse_secure_boot("")
    ('enforcing', 'off', 'unknown')
    """
    values = od_output.split()
    if len(values) != 5 or not all(v.isdigit() for v in values):
        return "unknown"
    return "enforcing" if values[4] == "1" else "off"

"""The scripts' contract: every ``GOLDEN_*`` variable the provisioning steps read.

One table, :data:`VARIABLES`, names each variable once: the layer of the plan
it belongs to, its form (the same form the bash validator of
``scripts/lib/validate.sh`` checks, named by :attr:`Form.check`), whether it
may be empty, and what it means. The plan's ``env()`` is checked against it
once, before rendering (:func:`check`), and ``tests/unit/test_contract.py``
derives the rest from it: the names the scripts read are exactly the table's,
each bash validator agrees with its form, and the enum validators accept
exactly the values of ``golden/profile.py``'s StrEnums.

A layer's variables come all or none: a profile without a driver has no
``GOLDEN_DRIVER_*`` at all, and the base steps read those variables in their
optional form. Variables marked ``runtime`` are not the plan's: the Packer
template, a step itself or the tests set them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from golden.errors import GoldenError, shown
from golden.profile import NVME_MODEL as _NVME_MODEL
from golden.profile import Arch, CudaSource, DataFs, DriverSource, Flavor, OsName, Runtime


class Layer(StrEnum):
    """The plan's layers, in install order (``# golden-layer:`` in each step's header)."""

    BASE = "base"
    KERNEL = "kernel"
    #: A local disk image: Debian's signed shim, MokManager and grub, installed and held.
    BOOT_CHAIN = "boot-chain"
    #: An image without a driver, for the GPU Operator: nouveau blacklisted (no variables).
    DRIVERLESS = "driverless"
    DRIVER = "driver"
    CUDA = "cuda"
    RUNTIME = "runtime"
    #: Apptainer beside the runtime, pinned and held, with a user for the rootless check.
    APPTAINER = "apptainer"
    #: Local NVMe for data and the runtime's storage, built at every boot (golden-data-disks).
    DATA_DISKS = "data-disks"
    CONTAINER_TOOLKIT = "container-toolkit"
    FABRIC_MANAGER = "fabric-manager"
    PERSISTENCE = "persistence"


@dataclass(frozen=True)
class Form:
    """What a value must look like: a pattern or a fixed set of values.

    ``check`` is the bash validator (``is_*`` in scripts/lib/validate.sh) the
    steps use for it, or ``""`` where no step checks it (a runtime variable).
    """

    check: str
    pattern: str = ""
    values: tuple[str, ...] = ()

    def accepts(self, value: str) -> bool:
        if self.values:
            return value in self.values
        return re.fullmatch(self.pattern, value) is not None


def _enum(check: str, enum: type[StrEnum]) -> Form:
    return Form(check, values=tuple(e.value for e in enum))


_PKG = r"[a-z0-9][a-z0-9+.-]+"
_VERSION = r"([0-9]+:)?[0-9][A-Za-z0-9.+~-]*"
_PIN = r"([0-9]+:)?[0-9][A-Za-z0-9.+~*-]*"

PROFILE = Form("is_profile", r"[a-z0-9][a-z0-9._-]*")
UUID = Form("is_uuid", r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
OS_ID = _enum("is_os_id", OsName)
#: The family is an OS id's first part (debian-12 -> debian).
FAMILY = Form("is_family", values=tuple(sorted({o.value.split("-")[0] for o in OsName})))
CODENAME = Form("is_codename", r"[a-z]+")
COMPONENT = Form("is_component", r"[a-z0-9][a-z0-9-]*")
ARCH = _enum("is_arch", Arch)
URL = Form("is_url", r"(https?://[A-Za-z0-9.-]+(:[0-9]+)?|file://)(/[A-Za-z0-9._~%+,=:@/-]*)?")
SUITE = Form("is_suite", r"/|[a-z0-9][a-z0-9._/-]*")
FINGERPRINT = Form("is_fingerprint", r"[0-9A-F]{40}")
PKG_NAME = Form("is_pkg_name", _PKG)
INSTALL_SPEC = Form("is_install_spec", rf"{_PKG}(={_VERSION})?")
PIN_ENTRY = Form("is_pin_entry", rf"(src:)?{_PKG}={_PIN}")
PIN_PATTERN = Form("is_pin_pattern", _PIN)
VERSION = Form("is_version", _VERSION)
KERNEL = Form("is_kernel", r"[0-9]+\.[0-9]+(\.[0-9]+)?[A-Za-z0-9.+_~-]*")
BRANCH = Form("is_branch", r"[0-9]{3}")
DRIVER_VERSION = Form("is_driver_version", r"[0-9]{3}\.[0-9]+(\.[0-9]+)?")
FLAVOR = _enum("is_flavor", Flavor)
DRIVER_SOURCE = _enum("is_driver_source", DriverSource)
CUDA_SOURCE = _enum("is_cuda_source", CudaSource)
GPU_ARCH = Form("is_gpu_arch", r"sm_[0-9]{2,3}[a-z]?")
CUDA_RELEASE = Form("is_cuda_release", r"[0-9]{1,2}\.[0-9]{1,2}")
MODULE = Form("is_module", r"[a-z0-9_-]+")
#: A certificate's serial number as golden/secureboot.py records it: upper-case hex, no leading zeros.
SERIAL = Form("is_serial", r"[0-9A-F]{1,40}")
RUNTIME = _enum("is_runtime", Runtime)
SERVICE = Form("is_service_name", r"[A-Za-z0-9@._:-]+")
BOOL = Form("is_bool", values=("true", "false"))
DATA_FS = _enum("is_data_fs", DataFs)
NVME_MODEL = Form("is_nvme_model", _NVME_MODEL.pattern.removeprefix("^").removesuffix("$"))
ABS_PATH = Form("is_abs_path", r"/[A-Za-z0-9._/-]*")
USER_NAME = Form("is_user_name", r"[a-z_][a-z0-9_-]{0,31}")
STEP = Form("", r"[0-9]{2}-[A-Za-z0-9][A-Za-z0-9._-]*|golden")
FLAG = Form("", values=("1",))
SECONDS = Form("", r"[0-9]+")


@dataclass(frozen=True)
class Var:
    """One ``GOLDEN_*`` variable."""

    name: str
    layer: Layer
    form: Form
    about: str
    empty: bool = False     # may be the empty string
    words: bool = False     # space-separated words, each of ``form``
    runtime: bool = False   # set at run time (template, step, tests), not by plan.env()

    def accepts(self, value: str) -> bool:
        if value == "":
            return self.empty
        if self.words:
            return value == " ".join(value.split(" ")) and all(
                w and self.form.accepts(w) for w in value.split(" "))
        return self.form.accepts(value)


def _repo(prefix: str, what: str) -> tuple[Var, ...]:
    return (
        Var(f"{prefix}_URL", Layer.BASE, URL, f"the {what} repository (empty: not used)", empty=True),
        Var(f"{prefix}_SUITE", Layer.BASE, SUITE, f"its suite, / for a flat repository ({what})", empty=True),
        Var(f"{prefix}_COMPONENTS", Layer.BASE, COMPONENT, f"its components ({what})", empty=True,
            words=True),
        Var(f"{prefix}_KEY_URL", Layer.BASE, URL, f"its signing key ({what})", empty=True),
        Var(f"{prefix}_FINGERPRINT", Layer.BASE, FINGERPRINT, f"the key's fingerprint ({what})", empty=True),
    )


_B, _K, _D = Layer.BASE, Layer.KERNEL, Layer.DRIVER
VARIABLES: tuple[Var, ...] = (
    Var("GOLDEN_PROFILE", _B, PROFILE, "the profile's name"),
    Var("GOLDEN_OS", _B, OS_ID, "the OS id, e.g. ubuntu-24.04"),
    Var("GOLDEN_OS_FAMILY", _B, FAMILY, "debian or ubuntu"),
    Var("GOLDEN_OS_CODENAME", _B, CODENAME, "the OS release's codename, e.g. noble"),
    Var("GOLDEN_OS_COMPONENTS", _B, COMPONENT, "the OS archive components the image needs", empty=True,
        words=True),
    Var("GOLDEN_ARCH", _B, ARCH, "the Debian architecture"),
    Var("GOLDEN_OS_MIRROR", _B, URL, "a mirror of the OS archive (empty: the image's own sources)",
        empty=True),
    *_repo("GOLDEN_CUDA_REPO", "CUDA"),
    *_repo("GOLDEN_CTK_REPO", "container toolkit"),
    Var("GOLDEN_PINS", _B, PIN_ENTRY, "apt pins: name=pattern or src:NAME=pattern", empty=True, words=True),
    Var("GOLDEN_HOLDS", _B, PKG_NAME, "packages apt-mark holds", empty=True, words=True),
    Var("GOLDEN_KERNEL", _K, KERNEL, "the pinned kernel release (empty: the base image's, held)", empty=True),
    Var("GOLDEN_KERNEL_PACKAGES", _K, INSTALL_SPEC, "the pinned kernel's packages", empty=True, words=True),
    Var("GOLDEN_KERNEL_HEADERS", _K, BOOL, "the kernel's headers are installed and held (false: a driverless "
        "image whose GPU Operator uses precompiled modules)"),
    Var("GOLDEN_BOOT_CHAIN_PACKAGES", Layer.BOOT_CHAIN, INSTALL_SPEC, "Debian's signed shim, MokManager and grub, "
        "and mokutil (target.format: disk)", words=True),
    Var("GOLDEN_DRIVER_SOURCE", _D, DRIVER_SOURCE, "where the driver comes from"),
    Var("GOLDEN_DRIVER_FLAVOR", _D, FLAVOR, "the kernel module's flavour"),
    Var("GOLDEN_DRIVER_BRANCH", _D, BRANCH, "the driver branch, e.g. 595"),
    Var("GOLDEN_DRIVER_VERSION", _D, DRIVER_VERSION, "the exact driver version (empty: the branch's newest)",
        empty=True),
    Var("GOLDEN_DRIVER_PACKAGES", _D, INSTALL_SPEC, "the driver's packages, a pinning package first",
        words=True),
    Var("GOLDEN_DRIVER_SOURCES", _D, PKG_NAME, "the source packages the driver is built from", words=True),
    Var("GOLDEN_DRIVER_PIN", _D, PIN_PATTERN, "the apt pin of every package built from the driver's sources"),
    Var("GOLDEN_MODULE_NAME", _D, MODULE, "the kernel module, as modinfo names it"),
    Var("GOLDEN_SECURE_BOOT", _D, BOOL, "target.secure_boot: 42-module-signing signs the DKMS modules"),
    Var("GOLDEN_SIGNING_SERIAL", _D, SERIAL, "the signing certificate's serial number: every DKMS module's "
        "sig_key must be it (empty: without Secure Boot, or no key prepared, as by `invoke render` alone)",
        empty=True),
    Var("GOLDEN_SIGNING_DIR", _D, ABS_PATH, "where the bake put the signing key and certificate (mok.key, mok.pub) "
        "on the machine being baked: /var/lib/dkms locally, a tmpfs directory on EC2"),
    Var("GOLDEN_CUDA_PACKAGES", Layer.CUDA, INSTALL_SPEC, "the host CUDA toolkit's packages", empty=True,
        words=True),
    Var("GOLDEN_CUDA_TOOLKIT", Layer.CUDA, CUDA_RELEASE, "the pinned toolkit's CUDA release, e.g. 11.8: its nvcc "
        "must report it", empty=True),
    Var("GOLDEN_CUDA_SOURCE", Layer.CUDA, CUDA_SOURCE, "where the toolkit comes from (nvidia or distro)",
        empty=True),
    Var("GOLDEN_CUDA_NVCC", Layer.CUDA, ABS_PATH, "the toolkit's nvcc: the cuda step compiles the CUDA check with it",
        empty=True),
    Var("GOLDEN_CUDA_GPU_ARCH", Layer.CUDA, GPU_ARCH, "nvcc -arch for the profile's GPU, e.g. sm_89 (empty: unknown)",
        empty=True),
    Var("GOLDEN_CUDA_CCBIN", Layer.CUDA, PKG_NAME, "nvcc -ccbin, the host compiler (empty: nvcc's own choice)",
        empty=True),
    Var("GOLDEN_RUNTIME", Layer.RUNTIME, RUNTIME, "the container runtime"),
    Var("GOLDEN_RUNTIME_PACKAGES", Layer.RUNTIME, INSTALL_SPEC, "the runtime's packages", empty=True,
        words=True),
    Var("GOLDEN_RUNTIME_SERVICE", Layer.RUNTIME, SERVICE, "the runtime's systemd service", empty=True),
    Var("GOLDEN_APPTAINER_PACKAGES", Layer.APPTAINER, INSTALL_SPEC, "Apptainer's package", words=True),
    Var("GOLDEN_APPTAINER_VERSION", Layer.APPTAINER, VERSION, "the pinned Apptainer release: apptainer --version "
        "must print it"),
    Var("GOLDEN_APPTAINER_SUITE", Layer.APPTAINER, SUITE, "the Debian suite it comes from, added for the bake only "
        "(unstable)"),
    Var("GOLDEN_APPTAINER_USER", Layer.APPTAINER, USER_NAME, "the unprivileged user of the rootless boot check, "
        "given /etc/subuid and /etc/subgid ranges"),
    Var("GOLDEN_DATA_DISKS_PACKAGES", Layer.DATA_DISKS, INSTALL_SPEC, "mdadm (and xfsprogs for xfs)",
        words=True),
    Var("GOLDEN_DATA_DISKS_MODEL", Layer.DATA_DISKS, NVME_MODEL, "the NVMe model of the disks to use, e.g. "
        "Amazon EC2 NVMe Instance Storage"),
    Var("GOLDEN_DATA_DISKS_MOUNT", Layer.DATA_DISKS, ABS_PATH, "where their filesystem is mounted, e.g. /data"),
    Var("GOLDEN_DATA_DISKS_FS", Layer.DATA_DISKS, DATA_FS, "their filesystem"),
    Var("GOLDEN_DATA_DISKS_STORAGE", Layer.DATA_DISKS, ABS_PATH, "the runtime's storage directory, bind-mounted "
        "onto the data disks (empty: no runtime)", empty=True),
    Var("GOLDEN_CTK_VERSION", Layer.CONTAINER_TOOLKIT, VERSION, "the NVIDIA Container Toolkit's version",
        empty=True),
    Var("GOLDEN_CTK_PACKAGES", Layer.CONTAINER_TOOLKIT, INSTALL_SPEC, "the container toolkit's packages",
        empty=True, words=True),
    Var("GOLDEN_CDI", Layer.CONTAINER_TOOLKIT, BOOL, "a CDI specification is kept current"),
    Var("GOLDEN_CDI_REFRESH", Layer.CONTAINER_TOOLKIT, BOOL, "the toolkit's nvidia-cdi-refresh does it"),
    Var("GOLDEN_FABRIC_MANAGER_PACKAGES", Layer.FABRIC_MANAGER, INSTALL_SPEC,
        "the fabric manager first, its extras after", empty=True, words=True),
    Var("GOLDEN_DRIVER_EXTRA_PACKAGES", Layer.FABRIC_MANAGER, INSTALL_SPEC,
        "driver-versioned extras such as nvidia-imex", empty=True, words=True),
    Var("GOLDEN_PERSISTENCE", Layer.PERSISTENCE, BOOL, "nvidia-persistenced is enabled"),
    Var("GOLDEN_PERSISTENCE_PACKAGES", Layer.PERSISTENCE, INSTALL_SPEC, "nvidia-persistenced's package",
        empty=True, words=True),
    # Set at run time.
    Var("GOLDEN_BUILD_ID", _B, UUID, "the build's id (the Packer template, from var.build_id)", runtime=True),
    Var("GOLDEN_STAGE", _B, ABS_PATH, "where scripts/ and cloud-init/ were uploaded (the template)",
        runtime=True),
    Var("GOLDEN_STEP", _B, STEP, "the running step's name (the step's own first line)", runtime=True),
    Var("GOLDEN_ROOT", _B, ABS_PATH, "the image's root, / but in the unit tests", runtime=True),
    Var("GOLDEN_LIB_LOADED", _B, FLAG, "lib.sh is sourced already", runtime=True),
    Var("GOLDEN_CDI_WAIT", _B, SECONDS, "seconds golden-gpu-check waits for the CDI specification",
        runtime=True),
)

BY_NAME: Mapping[str, Var] = {v.name: v for v in VARIABLES}


def check(env: Mapping[str, str]) -> Mapping[str, str]:
    """Check a plan's ``env()`` against the table and return it unchanged.

    Every name must be the table's and every value of its form; the base
    layer's variables must all be there, and any other layer's all or none.
    Runtime variables may be present (they are checked too) but are never
    required.
    """
    for name, value in env.items():
        var = BY_NAME.get(name)
        if var is None:
            raise GoldenError(f"{name} is not in the scripts' contract (golden/contract.py)")
        if not var.accepts(value):
            expected = var.form.check.removeprefix("is_") or "a value of its form"
            raise GoldenError(f"{name} has an invalid value {shown(value)} ({expected} expected)")
    for layer in Layer:
        names = [v.name for v in VARIABLES if v.layer is layer and not v.runtime]
        present = [n for n in names if n in env]
        if (present or layer is Layer.BASE) and len(present) < len(names):
            missing = next(n for n in names if n not in env)
            raise GoldenError(f"{missing} is missing: the {layer} layer's variables come all or none")
    return env

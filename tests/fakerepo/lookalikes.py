"""NVIDIA's packages as look-alikes: real names, versions, dependencies and file layout.

The names and version formats come from NVIDIA's repositories as recorded in
/work/shared/facts/nvidia-facts.md (section 4), *not* from golden's own data,
so that golden's package tables are tested against an independent copy.

>>> names = driver_names("debian", "595")
>>> names.open_meta, names.open_kmod
('nvidia-open', 'nvidia-kernel-open-dkms')
>>> driver_names("ubuntu", "580").open_meta
'nvidia-open-580'
>>> driver_revision("ubuntu", "595.58.03")
'595.58.03-1ubuntu1'
>>> sorted(driver_names("debian", "595").libraries)
['libcuda1', 'libnvidia-ml1', 'libnvidia-ptxjitcompiler1']
>>> driver_names("ubuntu", "580").libraries["libnvidia-compute-580"]
('libcuda.so.1', 'libnvidia-ml.so.1', 'libnvidia-ptxjitcompiler.so.1')
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from tests.fakerepo.debs import DebSpec, File
from tests.fakerepo.elfmod import kernel_module
from tests.fakerepo.model import FakeDriver, FakeToolkit, Flavor
from tests.fakerepo.sharedlib import library_files

#: NVIDIA's repository directory names, and the OS family each belongs to.
FAMILIES = {"debian12": "debian", "debian13": "debian", "ubuntu2204": "ubuntu",
            "ubuntu2404": "ubuntu", "ubuntu2604": "ubuntu"}
#: golden's OS ids, accepted as well.
GOLDEN_OS = {"debian-12": "debian12", "debian-13": "debian13", "ubuntu-22.04": "ubuntu2204",
             "ubuntu-24.04": "ubuntu2404", "ubuntu-26.04": "ubuntu2604"}

UNITS = "lib/systemd/system"
LICENSE = {"open": "Dual MIT/GPL", "proprietary": "NVIDIA"}
CDI_REFRESH_SINCE = (1, 18, 0)
NVLSM_VERSION = "2025.10.4-1"   # invented: nvlsm is versioned on its own, not by the driver
#: What CUDA programs and the container toolkit's "compute" list load, by soname.
DRIVER_LIBRARIES = ("libcuda.so.1", "libnvidia-ml.so.1", "libnvidia-ptxjitcompiler.so.1")
#: Debian's one-library-per-package names (NVIDIA's Debian repository follows them).
DEBIAN_LIBRARY_PACKAGES = {"libcuda1": ("libcuda.so.1",), "libnvidia-ml1": ("libnvidia-ml.so.1",),
                           "libnvidia-ptxjitcompiler1": ("libnvidia-ptxjitcompiler.so.1",)}
#: GSP firmware the open module loads, under /lib/firmware/nvidia/<version>/ (its modinfo says so).
GSP_FIRMWARE = ("gsp_tu10x.bin", "gsp_ga10x.bin")


def nvidia_distro(distro: str) -> str:
    """NVIDIA's directory name for ``distro`` (which may also be a golden OS id)."""
    name = GOLDEN_OS.get(distro, distro)
    if name not in FAMILIES:
        raise ValueError(f"unknown distro {distro!r}: use one of {', '.join(FAMILIES)}")
    return name


@dataclass(frozen=True)
class DriverNames:
    open_meta: str          # what a user installs for the open kernel modules
    proprietary_meta: str   # ... for the proprietary ones
    open_kmod: str          # the package that puts the open module under /lib/modules
    proprietary_kmod: str
    userspace: str
    fabricmanager: str
    libraries: dict[str, tuple[str, ...]]   # package -> the sonames it installs
    firmware: str                           # GSP firmware, which the open module package needs


def driver_names(family: str, branch: str) -> DriverNames:
    """Package names in NVIDIA's repository for ``branch`` on ``family`` (debian | ubuntu).

    Ubuntu names carry the branch up to R580; from R590 on they do not, and a
    ``nvidia-driver-pinning-<branch>`` package picks the branch instead.
    Debian names never carried it.
    """
    fabricmanager = ("nvidia-fabricmanager" if int(branch) >= 580
                     else f"nvidia-fabricmanager-{branch}")
    if family == "debian":
        return DriverNames("nvidia-open", "cuda-drivers", "nvidia-kernel-open-dkms",
                           "nvidia-kernel-dkms", "nvidia-driver-cuda", fabricmanager,
                           dict(DEBIAN_LIBRARY_PACKAGES), "firmware-nvidia-gsp")
    # Ubuntu: libnvidia-compute-* is the user space and carries all the libraries.
    suffix = f"-{branch}" if int(branch) <= 580 else ""
    compute = f"libnvidia-compute{suffix}"
    if int(branch) <= 580:
        return DriverNames(f"nvidia-open-{branch}", f"cuda-drivers-{branch}",
                           f"nvidia-dkms-{branch}-open", f"nvidia-dkms-{branch}",
                           compute, fabricmanager, {compute: DRIVER_LIBRARIES},
                           f"nvidia-firmware{suffix}")
    return DriverNames("nvidia-open", "cuda-drivers", "nvidia-dkms-open", "nvidia-dkms",
                       compute, fabricmanager, {compute: DRIVER_LIBRARIES},
                       f"nvidia-firmware{suffix}")


def driver_revision(family: str, upstream: str) -> str:
    """The Debian version of a driver-built package: ``-1`` (Debian), ``-1ubuntu1`` (Ubuntu)."""
    return f"{upstream}-1ubuntu1" if family == "ubuntu" else f"{upstream}-1"


def _sh(body: str) -> File:
    return File("#!/bin/sh\n# golden fakerepo look-alike, not NVIDIA's program.\n" + body, 0o755)


def _unit(description: str, exec_start: str, *, extra: str = "") -> File:
    # Oneshot, so that a booted test image without a GPU does not show a failed unit.
    return File(f"[Unit]\nDescription={description}\n{extra}\n[Service]\nType=oneshot\n"
                f"RemainAfterExit=yes\nExecStart={exec_start}\n\n"
                "[Install]\nWantedBy=multi-user.target\n")


# --- kernel modules -----------------------------------------------------------

def _modules(version: str, flavor: Flavor, kernel: str) -> dict[str, File]:
    """nvidia*.ko for ``kernel`` where DKMS would have put them, with real .modinfo."""
    vermagic = f"{kernel} SMP mod_unload modversions "
    files = {}
    # nvidia-uvm and nvidia-drm are MIT/GPL in both flavours; the other two follow the flavour.
    for module, follows, depends in (("nvidia", True, ""), ("nvidia-modeset", True, "nvidia"),
                                     ("nvidia-uvm", False, "nvidia"),
                                     ("nvidia-drm", False, "nvidia-modeset")):
        fields = [("version", version),
                  ("license", LICENSE[flavor] if follows else LICENSE["open"])]
        if module == "nvidia":
            fields += [*(("firmware", f"nvidia/{version}/{f}") for f in GSP_FIRMWARE),
                       ("alias", "pci:v000010DEd*sv*sd*bc03sc02i00*"),
                       ("alias", "pci:v000010DEd*sv*sd*bc03sc00i00*")]
        fields += [("depends", depends), ("retpoline", "Y"),
                   ("name", module.replace("-", "_")), ("vermagic", vermagic)]
        files[f"lib/modules/{kernel}/updates/dkms/{module}.ko"] = File(kernel_module(fields))
    return files


def _depmod_script(kernel: str, when: str) -> str:
    # A DKMS package compiles the module here; the look-alike ships it built and
    # only indexes it, so that `modinfo -k KVER nvidia` finds it by name.
    # DPKG_ROOT is set when dpkg installs into another root without chroot.
    return (f"#!/bin/sh\nset -e\nif [ \"$1\" = {when} ] && command -v depmod >/dev/null 2>&1 \\\n"
            f"    && [ -d \"${{DPKG_ROOT:-}}/lib/modules/{kernel}\" ]; then\n"
            f"    depmod -b \"${{DPKG_ROOT:-/}}\" -a {kernel}\nfi\n")


def _kmod_deb(name: str, revision: str, flavor: Flavor, module_version: str, kernel: str,
              conflicts: str, depends: tuple[str, ...] = ()) -> DebSpec:
    source = "nvidia-open-gpu-kernel-modules" if "open" in name else "nvidia-graphics-drivers"
    return DebSpec(
        name, revision, source=source, depends=depends, conflicts=(conflicts,),
        section="multiverse/kernel",
        provides=("nvidia-kernel-dkms-any",),
        description=(f"NVIDIA kernel modules ({flavor}), prebuilt for {kernel}\n"
                     "Look-alike of the DKMS package: the modules are shipped built."),
        files=_modules(module_version, flavor, kernel),
        scripts={"postinst": _depmod_script(kernel, "configure"),
                 "postrm": _depmod_script(kernel, "remove")})


# --- driver ------------------------------------------------------------------

def _libraries(package: str, revision: str, sonames: tuple[str, ...], version: str,
               description: str) -> DebSpec:
    """A package of driver libraries: real shared objects at ``version``, ldconfig triggered."""
    objects, links = library_files(sonames, version)
    files = {rel: File(data) for rel, data in objects.items()}
    files[f"usr/share/doc/{package}/README.fakerepo"] = File(
        f"Look-alike of NVIDIA driver {version} libraries: no code.\n")
    return DebSpec(package, revision, source="nvidia-graphics-drivers", section="libs",
                   description=description, files=files, links=links,
                   triggers=("activate-noawait ldconfig",))


def _firmware(package: str, revision: str, version: str) -> DebSpec:
    return DebSpec(package, revision, source="nvidia-graphics-drivers",
                   section="non-free-firmware/kernel",
                   description="NVIDIA GSP firmware (look-alike: not loadable)",
                   files={f"lib/firmware/nvidia/{version}/{name}":
                          File(f"golden fakerepo look-alike of {name} for {version}\n")
                          for name in GSP_FIRMWARE})


def _userspace_debs(n: DriverNames, rev: str, version: str) -> list[DebSpec]:
    """The user space: on Ubuntu one package with every library, on Debian one per library."""
    if n.userspace in n.libraries:
        return [_libraries(n.userspace, rev, n.libraries[n.userspace], version,
                           description="NVIDIA compute libraries (look-alike shared objects)")]
    libs = [_libraries(pkg, rev, sonames, version,
                       description=f"NVIDIA driver library {sonames[0]} (look-alike)")
            for pkg, sonames in n.libraries.items()]
    return [DebSpec(n.userspace, rev, source="nvidia-graphics-drivers",
                    depends=tuple(f"{lib.name} (= {rev})" for lib in libs),
                    description="NVIDIA driver user space (look-alike: the libraries only)",
                    files={f"usr/share/doc/{n.userspace}/README.fakerepo":
                           File(f"Look-alike of NVIDIA driver {version} user space.\n")}),
            *libs]


def driver_debs(drv: FakeDriver, family: str, kernel: str,
                flavor_overrides: Mapping[str, Flavor]) -> list[DebSpec]:
    """The packages one driver release puts in NVIDIA's repository."""
    n = driver_names(family, drv.branch)
    rev = driver_revision(family, drv.version)
    kver = drv.kernel or kernel
    modver = drv.module_version or drv.version
    open_flavor: Flavor = flavor_overrides.get(
        n.open_meta, flavor_overrides.get(n.open_kmod, "open" if drv.open else "proprietary"))
    prop_flavor: Flavor = flavor_overrides.get(
        n.proprietary_meta, flavor_overrides.get(n.proprietary_kmod, "proprietary"))
    fm_upstream = drv.fabricmanager_version or drv.version
    pd_upstream = drv.persistenced_version or drv.version
    return [
        DebSpec(n.open_meta, rev, source="nvidia-graphics-drivers",
                depends=(f"{n.open_kmod} (= {rev})", f"{n.userspace} (= {rev})"),
                description="NVIDIA driver metapackage, open kernel modules"),
        DebSpec(n.proprietary_meta, rev, source="nvidia-graphics-drivers",
                depends=(f"{n.proprietary_kmod} (= {rev})", f"{n.userspace} (= {rev})"),
                description="NVIDIA driver metapackage, proprietary kernel modules"),
        # The open module loads GSP firmware; the proprietary one runs without it.
        _kmod_deb(n.open_kmod, rev, open_flavor, modver, kver, n.proprietary_kmod,
                  depends=(f"{n.firmware} (= {rev})",)),
        _kmod_deb(n.proprietary_kmod, rev, prop_flavor, modver, kver, n.open_kmod),
        _firmware(n.firmware, rev, drv.version),
        *_userspace_debs(n, rev, drv.version),
        DebSpec(n.fabricmanager, f"{fm_upstream}-1", source="nvidia-fabric-manager",
                description="Fabric Manager for NVSwitch based systems", files={
                    "usr/bin/nv-fabricmanager": _sh(
                        f'case "${{1:-}}" in -v|--version) '
                        f'echo "Fabric Manager version is : {fm_upstream}";; esac\n'),
                    "usr/share/nvidia/nvswitch/fabricmanager.cfg": File("LOG_LEVEL=4\n"),
                    f"{UNITS}/nvidia-fabricmanager.service": _unit(
                        "NVIDIA fabric manager service",
                        "/usr/bin/nv-fabricmanager -c "
                        "/usr/share/nvidia/nvswitch/fabricmanager.cfg"),
                }),
        DebSpec("nvidia-imex", f"{drv.version}-1", source="nvidia-imex",
                description="NVIDIA IMEX service for multi-node NVLink", files={
                    "usr/bin/nvidia-imex": _sh(
                        f'case "${{1:-}}" in -v|--version) '
                        f'echo "IMEX version is: {drv.version}";; esac\n'),
                    f"{UNITS}/nvidia-imex.service": _unit("NVIDIA IMEX service",
                                                          "/usr/bin/nvidia-imex"),
                }),
        DebSpec("nvidia-persistenced", driver_revision(family, pd_upstream),
                source="nvidia-persistenced", description="NVIDIA Persistence Daemon", files={
                    "usr/bin/nvidia-persistenced": _sh(
                        f'case "${{1:-}}" in -v|--version) '
                        f'echo "nvidia-persistenced:  version {pd_upstream}";; esac\n'),
                    f"{UNITS}/nvidia-persistenced.service": _unit(
                        "NVIDIA Persistence Daemon",
                        "/usr/bin/nvidia-persistenced --user nvidia-persistenced --verbose"),
                }),
    ]


def _pin_file(comment: str, pattern: str) -> File:
    sources = ("src:nvidia-graphics-drivers src:nvidia-open-gpu-kernel-modules "
               "src:nvidia-fabric-manager src:nvidia-imex src:nvidia-persistenced")
    return File(f"# {comment}\n# golden fakerepo look-alike of NVIDIA's pinning package.\n"
                f"Package: {sources}\nPin: version {pattern}\nPin-Priority: 1000\n")


def pinning_debs(family: str, branches: set[str], versions: set[str]) -> list[DebSpec]:
    """``nvidia-driver-pinning-<branch>`` and ``nvidia-driver-pinning-<version>`` packages.

    All of them provide and conflict with ``nvidia-driver-pinning``, so only one
    can be installed, and each writes an apt preferences file (priority 1000).
    """
    rev = "1ubuntu1" if family == "ubuntu" else "1"
    out = []
    for what, pattern in [*((b, f"{b}.*") for b in sorted(branches)),
                          *((v, f"{v}-*") for v in sorted(versions))]:
        name = f"nvidia-driver-pinning-{what}"
        comment = (f"APT driver pinning file for driver branch {what}" if "." not in what
                   else f"APT driver pinning file for driver version {what}")
        # apt ignores a preferences.d file whose name has an extension other
        # than ".pref": "...-595.58.03" would be skipped without a notice.
        filename = name if "." not in what else f"{name}.pref"
        out.append(DebSpec(
            name, f"{what}-{rev}", architecture="all", source="nvidia-driver-pinning",
            provides=("nvidia-driver-pinning",), conflicts=("nvidia-driver-pinning",),
            description=comment,
            files={f"etc/apt/preferences.d/{filename}": _pin_file(comment, pattern)}))
    return out


def nvlsm_deb() -> DebSpec:
    return DebSpec("nvlsm", NVLSM_VERSION, source="nvlsm",
                   description="NVLink subnet manager (empty look-alike)",
                   files={"usr/share/nvidia/nvlsm/nvlsm.conf": File("# look-alike\n")})


# --- container toolkit ---------------------------------------------------------

def _commit(version: str) -> str:
    return hashlib.sha1(f"nvidia-container-toolkit {version}".encode(),  # a stable fake git sha
                        usedforsecurity=False).hexdigest()


def nvidia_ctk(tk: FakeToolkit) -> str:
    """The nvidia-ctk look-alike script for ``tk``."""
    text = resources.files("tests.fakerepo").joinpath("data/nvidia-ctk.sh").read_text()
    for key, value in (("PKG_VERSION", tk.version), ("REPORTED_VERSION", tk.reports or tk.version),
                       ("COMMIT", _commit(tk.reports or tk.version)),
                       ("WRITES_RUNTIME", "true" if tk.writes_runtime else "false")):
        text = text.replace(f"@{key}@", value)
    return text


def _toolkit_postinst(cdi_refresh: bool) -> str:
    # The real postinst writes the runtime's config.toml and, on a running
    # system (not in an image build), enables the CDI refresh units.
    enable = ("    if command -v systemctl >/dev/null 2>&1 && [ -z \"${DPKG_ROOT:-}\" ] \\\n"
              "       && systemctl --quiet is-system-running 2>/dev/null; then\n"
              "        systemctl daemon-reload || true\n"
              "        systemctl enable --now nvidia-cdi-refresh.path || true\n"
              "    fi\n") if cdi_refresh else ""
    return ("#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n"
            "    \"${DPKG_ROOT:-}/usr/bin/nvidia-ctk\" --quiet config --in-place \\\n"
            "        --config-file=\"${DPKG_ROOT:-}/etc/nvidia-container-runtime/config.toml\"\n"
            f"{enable}fi\n")


def ctk_debs(tk: FakeToolkit) -> list[DebSpec]:
    """The four NVIDIA Container Toolkit packages at ``<version>-1``, pinned to each other."""
    v = tk.version
    rev = f"{v}-1"
    cdi_refresh = tuple(int(x) for x in v.split(".")[:3]) >= CDI_REFRESH_SINCE
    base_files = {
        "usr/bin/nvidia-ctk": File(nvidia_ctk(tk), 0o755),
        "usr/bin/nvidia-container-runtime": _sh(
            f'case "${{1:-}}" in --version) printf "NVIDIA Container Runtime version {v}\\n'
            f'commit: {_commit(v)}\\n";; *) echo "look-alike: no GPU" >&2; exit 1;; esac\n'),
        "usr/bin/nvidia-cdi-hook": _sh('echo "look-alike: no GPU" >&2\nexit 1\n'),
    }
    if cdi_refresh:
        base_files |= {
            f"{UNITS}/nvidia-cdi-refresh.path": File(
                "[Unit]\n"
                "Description=Trigger CDI refresh on NVIDIA driver install / uninstall events\n\n"
                "[Path]\nPathChanged=/lib/modules/%v/modules.dep\n"
                "PathChanged=/lib/modules/%v/modules.dep.bin\n\n"
                "[Install]\nWantedBy=multi-user.target\n"),
            f"{UNITS}/nvidia-cdi-refresh.service": File(
                "[Unit]\nDescription=Refresh NVIDIA CDI specification file\n"
                "ConditionPathExists=/usr/bin/nvidia-smi\nConditionPathExists=/usr/bin/nvidia-ctk\n\n"
                "[Service]\nType=oneshot\n"
                "Environment=NVIDIA_CTK_CDI_OUTPUT_FILE_PATH=/var/run/cdi/nvidia.yaml\n"
                "EnvironmentFile=-/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env\n"
                "ExecCondition=/usr/bin/nvidia-smi -L\n"
                "ExecStart=/usr/bin/nvidia-ctk cdi generate"
                " --output=${NVIDIA_CTK_CDI_OUTPUT_FILE_PATH}\n"
                "\n[Install]\nWantedBy=multi-user.target\n"),
            "etc/nvidia-container-toolkit/nvidia-cdi-refresh.env": File(
                "# Overrides for nvidia-cdi-refresh.service\n"),
        }
    return [
        DebSpec("libnvidia-container1", rev, source="libnvidia-container", section="libs",
                description="NVIDIA container runtime library (empty look-alike)",
                files={"usr/share/doc/libnvidia-container1/README.fakerepo":
                       File(f"Look-alike of libnvidia-container {v}.\n")}),
        DebSpec("libnvidia-container-tools", rev, source="libnvidia-container", section="utils",
                depends=(f"libnvidia-container1 (= {rev})",),
                description="NVIDIA container runtime library (command-line tools)",
                files={"usr/bin/nvidia-container-cli": _sh(
                    f'case "${{1:-}}" in --version) '
                    f'printf "cli-version: {v}\\nlib-version: {v}\\n";;'
                    ' *) echo "look-alike: no GPU" >&2; exit 1;; esac\n')}),
        DebSpec("nvidia-container-toolkit-base", rev, source="nvidia-container-toolkit",
                section="utils", description="NVIDIA Container Toolkit Base",
                files=base_files, scripts={"postinst": _toolkit_postinst(cdi_refresh)}),
        DebSpec("nvidia-container-toolkit", rev, source="nvidia-container-toolkit", section="utils",
                depends=(f"nvidia-container-toolkit-base (= {rev})",
                         f"libnvidia-container-tools (= {rev})"),
                description="NVIDIA Container toolkit",
                files={"usr/bin/nvidia-container-runtime-hook": _sh(
                    'echo "look-alike: no GPU" >&2\nexit 1\n')}),
    ]


# --- CUDA toolkit ------------------------------------------------------------------

def cuda_debs(version: str, reports: str | None = None) -> list[DebSpec]:
    """``cuda-toolkit-X-Y`` at ``X.Y.Z-1`` with an nvcc that prints the real 5-line banner,
    naming release ``reports`` (a look-alike of another release) when given."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"CUDA toolkit version {version!r} is not like 13.2.1")
    major, minor, _ = parts
    said_major, said_minor = (reports or f"{major}.{minor}").split(".")
    prefix = f"usr/local/cuda-{major}.{minor}"
    nvcc = _sh(
        'case "${1:-}" in --version|-V) ;; *) echo "nvcc fatal   : look-alike" >&2; exit 1;; esac\n'
        "echo 'nvcc: NVIDIA (R) Cuda compiler driver'\n"
        "echo 'Copyright (c) 2005-2026 NVIDIA Corporation'\n"
        "echo 'Built on Tue_Jan_06_09:00:00_PM_PST_2026'\n"
        + (f"echo 'Cuda compilation tools, release {said_major}.{said_minor}, V{said_major}.{said_minor}.0'\n"
           f"echo 'Build cuda_{said_major}.{said_minor}.r{said_major}.{said_minor}/compiler.00000000_0'\n"
           if reports else
           f"echo 'Cuda compilation tools, release {major}.{minor}, V{version}'\n"
           f"echo 'Build cuda_{major}.{minor}.r{major}.{minor}/compiler.00000000_0'\n"))
    return [DebSpec(
        f"cuda-toolkit-{major}-{minor}", f"{version}-1", source=f"cuda-toolkit-{major}-{minor}",
        description=f"CUDA Toolkit {major}.{minor} meta-package (look-alike: nvcc only)",
        files={f"{prefix}/bin/nvcc": nvcc,
               f"{prefix}/version.json": File(
                   f'{{\n   "cuda" : {{\n      "name" : "CUDA SDK",\n'
                   f'      "version" : "{version}"\n   }}\n}}\n')})]

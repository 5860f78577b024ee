#!/usr/bin/env python3
"""release.py: the release manifest /etc/golden/release.json, from its inputs.

Run by 90-release.sh on the image being baked (python3 is on every image golden
bakes: cloud-init needs it), with the standard library only::

    release.py render FACT=VALUE... < PACKAGES

prints the manifest on stdout; 90-release writes it atomically. Its inputs:

- what was asked: the GOLDEN_* environment (already checked by the step);
- what is there, as 90-release read it off the image (dpkg-query, modinfo),
  as ``FACT=VALUE`` arguments (lists are space-separated words);
- PACKAGES on stdin: ``name<TAB>version`` lines, the recorded packages;
- ``advert=FILE``: what golden advertises about the containers the image runs
  (golden/advertise.py writes it as scripts/workloads.json): the driver's CUDA
  ceiling and each workload's name, image, digest, CUDA version and verdict.

The image has a driver when GOLDEN_DRIVER_BRANCH is set; without one
``driver`` is ``null``. A new layer adds its fields here, in one place.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SCHEMA = 1

FACTS = (
    "kernels", "driver_version", "module_kernels",
    "cuda_toolkit", "cuda_package", "cuda_version",
    "ctk_version", "ctk_package_version", "cdi", "cdi_refresh",
    "runtime_package", "runtime_version", "fm_package", "fm_version", "advert", "data_disks_mount",
    "signing_cert_sha256",
)
#: How workloads use the data disks: recorded in release.json with the mount point.
DATA_CONVENTION = ("datasets read-only and checkpoints writable as bind mounts under {mount}, "
                   "never the container's writable layer")
#: The keys of one advertised workload, in the manifest's order.
WORKLOAD_KEYS = ("name", "image", "digest", "cuda", "verdict")


def _opt(value: str) -> str | None:
    return value or None


def _facts(args: list[str]) -> dict[str, str]:
    facts = dict.fromkeys(FACTS, "")
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in facts:
            raise SystemExit(f"release.py: unknown fact {arg!r} (known: {', '.join(FACTS)})")
        facts[key] = value
    return facts


def _packages(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            continue
        name, sep, version = line.rstrip("\n").partition("\t")
        if not sep or not name or not version:
            raise SystemExit(f"release.py: a package line is not NAME<TAB>VERSION: {line!r}")
        out[name] = version
    return dict(sorted(out.items()))


def _advert(path: str) -> dict[str, object]:
    """The advert file, checked for shape (golden wrote it; a broken one stops the bake)."""
    if not path:
        return {"cuda_ceiling": None, "workloads": []}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"release.py: cannot read the advert {path}: {exc}") from None
    ceiling = data.get("cuda_ceiling") if isinstance(data, dict) else None
    items = data.get("workloads") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not (ceiling is None or isinstance(ceiling, str)) or not isinstance(items, list):
        raise SystemExit(f"release.py: {path}: expected {{cuda_ceiling, workloads: [...]}}")
    workloads = []
    for item in items:
        if (not isinstance(item, dict) or set(item) != set(WORKLOAD_KEYS)
                or not all(v is None or isinstance(v, str) for v in item.values())):
            raise SystemExit(f"release.py: {path}: a workload is not {{{', '.join(WORKLOAD_KEYS)}}}: {item!r}")
        workloads.append({k: item[k] for k in WORKLOAD_KEYS})
    return {"cuda_ceiling": ceiling, "workloads": workloads}


def manifest(env: dict[str, str], facts: dict[str, str], packages: dict[str, str]) -> dict[str, object]:
    """The manifest's content: the keys and their order are the schema."""
    advert = _advert(facts["advert"])
    driver: dict[str, object] | None = None
    if env.get("GOLDEN_DRIVER_BRANCH"):
        driver = {
            "branch": env["GOLDEN_DRIVER_BRANCH"],
            "version": facts["driver_version"],
            "flavor": env.get("GOLDEN_DRIVER_FLAVOR", ""),
            "source": _opt(env.get("GOLDEN_DRIVER_SOURCE", "")),
            "module": env.get("GOLDEN_MODULE_NAME", ""),
            "kernels": facts["module_kernels"].split(),
            "cuda_ceiling": advert["cuda_ceiling"],
        }
    return {
        "schema": SCHEMA,
        "profile": env["GOLDEN_PROFILE"],
        "build_id": env["GOLDEN_BUILD_ID"],
        "os": {"id": env["GOLDEN_OS"], "family": env["GOLDEN_OS_FAMILY"],
               "codename": env["GOLDEN_OS_CODENAME"], "arch": env["GOLDEN_ARCH"]},
        "kernel": {"pinned": _opt(env.get("GOLDEN_KERNEL", "")), "installed": facts["kernels"].split()},
        "driver": driver,
        "cuda": {"toolkit": _opt(facts["cuda_toolkit"]), "package": _opt(facts["cuda_package"]),
                 "version": _opt(facts["cuda_version"])},
        "container_toolkit": {"version": _opt(facts["ctk_version"]),
                              "package_version": _opt(facts["ctk_package_version"]),
                              "cdi": facts["cdi"] == "true", "cdi_refresh": facts["cdi_refresh"] == "true"},
        "runtime": {"name": env.get("GOLDEN_RUNTIME") or "none",
                    "service": _opt(env.get("GOLDEN_RUNTIME_SERVICE", "")),
                    "package": _opt(facts["runtime_package"]), "version": _opt(facts["runtime_version"])},
        "fabric_manager": {"enabled": bool(facts["fm_package"]), "package": _opt(facts["fm_package"]),
                           "version": _opt(facts["fm_version"])},
        "persistence": env.get("GOLDEN_PERSISTENCE") == "true",
        # The module signing certificate (never the key): what a machine must trust to load the module.
        "secure_boot": ({"certificate_sha256": facts["signing_cert_sha256"],
                         "serial": env.get("GOLDEN_SIGNING_SERIAL", "")}
                        if env.get("GOLDEN_SECURE_BOOT") == "true" and driver else None),
        "data_disks": ({"mount": facts["data_disks_mount"],
                        "convention": DATA_CONVENTION.format(mount=facts["data_disks_mount"])}
                       if facts["data_disks_mount"] else None),
        "workloads": advert["workloads"],
        "packages": packages,
    }


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "render":
        print("usage: release.py render FACT=VALUE... < PACKAGES", file=sys.stderr)
        return 2
    data = manifest(dict(os.environ), _facts(argv[1:]), _packages(sys.stdin.readlines()))
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

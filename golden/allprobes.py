"""Every probe parser by its fixture directory name (``tests/fixtures/probes/<probe>/``).

The fixture tests parse each captured ``<case>.txt`` with ``PARSERS[probe]``
and compare :func:`golden.probes.to_json` of the result with ``<case>.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from golden import containerprobes, gpuprobes, hostprobes, pkgprobes, systemprobes

#: Fixture directory name -> parser, for the fixture-driven tests.
PARSERS: dict[str, Callable[[str], Any]] = {
    "nvidia-smi-banner": gpuprobes.parse_smi_banner,
    "nvidia-smi-query-gpu": gpuprobes.parse_gpu_query,
    "nvidia-smi-query-gpu-r595": gpuprobes.parse_gpu_query_r595,
    "proc-driver-version": gpuprobes.parse_proc_version,
    "modinfo": hostprobes.parse_modinfo,
    "nvcc-version": gpuprobes.parse_nvcc,
    "nvidia-ctk-version": containerprobes.parse_ctk_version,
    "nvidia-ctk-cdi-list": containerprobes.parse_cdi_list,
    "dpkg-query": pkgprobes.parse_dpkg,
    "apt-mark-showhold": pkgprobes.parse_showhold,
    "apt-cache-policy": pkgprobes.parse_apt_policy,
    "docker-daemon-json": containerprobes.parse_docker_runtimes,
    "containerd-toml": containerprobes.parse_toml_runtimes,
    "systemctl-is-enabled": systemprobes.parse_unit_state,
    "systemctl-failed": systemprobes.parse_failed_units,
    "cloud-init-status": systemprobes.parse_cloud_init_status,
    "systemd-analyze": systemprobes.parse_boot_time,
    "systemd-analyze-critical-chain": systemprobes.parse_multi_user,
    "systemd-analyze-blame": systemprobes.parse_blame,
    "modprobe": hostprobes.classify_modprobe,
    "gpu-check-status": gpuprobes.parse_gpu_check_status,
    "kernels": hostprobes.parse_kernels,
    "boot-kernels": hostprobes.parse_boot_kernels,
    "modprobe-showconfig": hostprobes.parse_modprobe_config,
    "keyctl-show": hostprobes.parse_keyctl_show,
    "proc-keys": hostprobes.parse_proc_keys,
    "ldconfig": hostprobes.parse_ldconfig,
}

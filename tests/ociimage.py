"""OCI image layouts made in pure Python, for the tests' own registry.

A layout is what ``skopeo copy oci:DIR:TAG docker://...`` reads: ``oci-layout``,
``index.json`` and content-addressed ``blobs/sha256/``. Each image is one tiny
gzip'd tar layer and a config whose ``Env`` and ``Labels`` carry what golden
reads (``CUDA_VERSION``, ``NVIDIA_REQUIRE_CUDA``, the compat hints); several
images under one tag become an image index (a multi-arch image), as NVIDIA
publishes its CUDA and NGC images.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

#: NVIDIA's CUDA 12.4 base image's requirement string, shortened (the real one lists every brand
#: for the 470, 525 and 535 branches; see tests/fixtures/registry/README.md).
REQUIRE_12_4 = ("cuda>=12.4 brand=tesla,driver>=470,driver<471 brand=unknown,driver>=470,driver<471 "
                "brand=tesla,driver>=535,driver<536 brand=unknown,driver>=535,driver<536")


@dataclass(frozen=True)
class Image:
    """One image for one platform: its config's ``Env``, ``Labels`` and history lines."""

    env: Sequence[str] = ()
    arch: str = "amd64"
    labels: Mapping[str, str] = field(default_factory=dict)
    history: Sequence[str] = ()
    content: bytes = b"golden test image\n"


def cuda_image(version: str, require: str | None = None, *, arch: str = "amd64",
               compat: bool = True) -> Image:
    """An image shaped like NVIDIA's ``nvidia/cuda:X-base`` (its Env names, its compat package)."""
    major_minor = "-".join(version.split(".")[:2])
    env = ["PATH=/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           f"NVARCH={'x86_64' if arch == 'amd64' else 'sbsa'}",
           f"NVIDIA_REQUIRE_CUDA={require or 'cuda>=' + '.'.join(version.split('.')[:2])}",
           f"NV_CUDA_CUDART_VERSION={version}-1"]
    if compat:
        env.append(f"NV_CUDA_COMPAT_PACKAGE=cuda-compat-{major_minor}")
    env += [f"CUDA_VERSION={version}", "LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
            "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"]
    return Image(env=env, arch=arch, content=f"cuda {version} {arch}\n".encode())


def ngc_image(cuda: str, driver: str, *, arch: str = "amd64") -> Image:
    """An image shaped like an NGC framework image (``nvcr.io/nvidia/pytorch``): its Env names
    (``_CUDA_COMPAT_PATH``, ``CUDA_DRIVER_VERSION``, the catch-all ``cuda>=9.0``)."""
    env = ["PATH=/usr/local/nvm/versions/node/v16.20.2/bin:/usr/local/cuda/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           f"CUDA_VERSION={cuda}", f"CUDA_DRIVER_VERSION={driver}", "_CUDA_COMPAT_PATH=/usr/local/cuda/compat",
           "ENV=/etc/shinit_v2", "BASH_ENV=/etc/bash.bashrc", "NVIDIA_REQUIRE_CUDA=cuda>=9.0",
           "LD_LIBRARY_PATH=/usr/local/cuda/compat/lib.real:/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
           "NVIDIA_DRIVER_CAPABILITIES=compute,utility,video"]
    return Image(env=env, arch=arch, labels={"com.nvidia.build.id": "0"}, content=f"ngc {cuda}\n".encode())


def plain_image(arch: str = "amd64") -> Image:
    """An image without any CUDA hint (a Debian base, say)."""
    return Image(env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], arch=arch,
                 content=f"plain {arch}\n".encode())


def _json(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
        self.tags: list[dict[str, Any]] = []

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        """Store ``data``; its descriptor."""
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def image(self, img: Image) -> dict[str, Any]:
        """The image's layer, config and manifest stored; the manifest's descriptor."""
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as tf:
            info = tarfile.TarInfo("etc/golden-test")
            info.size, info.mode, info.mtime = len(img.content), 0o644, 0
            tf.addfile(info, io.BytesIO(img.content))
        raw = tar.getvalue()
        layer = self.blob(gzip.compress(raw, mtime=0), LAYER)
        config: dict[str, Any] = {
            "architecture": img.arch, "os": "linux",
            "config": {"Env": list(img.env), **({"Labels": dict(img.labels)} if img.labels else {})},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(raw).hexdigest()}"]},
            "history": [{"created_by": line} for line in img.history],
        }
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                    "config": self.blob(_json(config), CONFIG), "layers": [layer]}
        return {**self.blob(_json(manifest), MANIFEST), "platform": {"architecture": img.arch, "os": "linux"}}

    def tag(self, tag: str, images: Sequence[Image]) -> str:
        """``tag`` for one image, or for an index of several (one per arch); its digest."""
        descriptors = [self.image(img) for img in images]
        if len(descriptors) == 1:
            top = {k: v for k, v in descriptors[0].items() if k != "platform"}
        else:
            top = self.blob(_json({"schemaVersion": 2, "mediaType": INDEX, "manifests": descriptors}), INDEX)
        self.tags.append({**top, "annotations": {REF_NAME: tag}})
        (self.root / "index.json").write_bytes(
            _json({"schemaVersion": 2, "mediaType": INDEX, "manifests": self.tags}))
        return str(top["digest"])

"""What a workload image needs, read from its registry with skopeo.

skopeo brings the containers tools' own configuration for free: credentials
(``REGISTRY_AUTH_FILE``, ``$XDG_RUNTIME_DIR/containers/auth.json``,
``DOCKER_CONFIG``), mirrors and plain-HTTP registries from ``registries.conf``,
certificates from ``certs.d``. golden adds no flag of its own for any of it;
``CONTAINERS_REGISTRIES_CONF`` is also given to skopeo as ``--registries-conf``
because skopeo before 1.13 does not read the variable itself.

For one workload and the profile's arch (:func:`inspect`):

1. ``skopeo inspect --raw docker://REF``: an image index (or Docker manifest
   list) or one image manifest;
2. for an index, the entry for ``linux/ARCH`` and ``skopeo inspect --raw
   docker://REPO@DIGEST`` of it;
3. ``skopeo inspect --config docker://REPO@DIGEST``: the image's config.

The digest recorded is the one of the arch's image manifest (what a host of
that arch pulls): ``sha256`` of the manifest's raw bytes as the registry serves
them. From an index it is the entry's digest, checked against the bytes
fetched; for a single manifest it is computed from them, and the config is then
fetched by that digest, which the registry and skopeo check again. A reference
by digest must hash to its digest (the index's, when it names an index).

The parsers are pure functions of skopeo's output (tests/fixtures/registry/).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from golden import run
from golden.errors import GoldenError, StepFailed
from golden.workloads import Workload, WorkloadFacts, split_reference

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
#: A path under a CUDA install's forward-compatibility directory (``/usr/local/cuda-12.4/compat``).
_COMPAT_DIR = re.compile(r"/usr/local/cuda[^/:\s]*/compat\b")
#: A history line that installs a ``cuda-compat-X-Y`` package.
_COMPAT_INSTALL = re.compile(r"\binstall\b[^;&|]*\bcuda-compat-\d+-\d+\b")
_SKOPEO_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ImageRef:
    """A workload's reference as skopeo is given it; ``registry`` is its host (``docker.io``
    for a Docker Hub short name, as skopeo reads one)."""

    repo: str
    tag: str | None
    digest: str | None
    registry: str

    def by_digest(self, digest: str) -> str:
        return f"docker://{self.repo}@{digest}"

    def __str__(self) -> str:
        return self.repo + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_reference(image: str) -> ImageRef:
    """A reference split by golden.workloads' grammar (ValueError when it is not one).

    >>> parse_reference("127.0.0.1:5000/team/cuda:12.4")
    ImageRef(repo='127.0.0.1:5000/team/cuda', tag='12.4', digest=None, registry='127.0.0.1:5000')
    """
    ref = split_reference(image)
    repo = f"{ref.domain}/{ref.path}" if ref.domain else ref.path
    return ImageRef(repo=repo, tag=ref.tag, digest=ref.digest, registry=ref.domain or "docker.io")


def sha256_digest(raw: str) -> str:
    """The digest of a manifest as skopeo printed it (UTF-8, as served)."""
    return "sha256:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _json_object(raw: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object")
    return data


def is_index(manifest: Mapping[str, Any]) -> bool:
    """An image index / manifest list (by its media type, else by having ``manifests``)."""
    media = manifest.get("mediaType")
    return media in INDEX_TYPES or (media is None and isinstance(manifest.get("manifests"), list))


def parse_manifest(raw: str) -> dict[str, Any]:
    """``skopeo inspect --raw`` output: an index or a schema-2 image manifest."""
    data = _json_object(raw, "the manifest")
    if data.get("schemaVersion") != 2:
        raise ValueError(f"manifest schemaVersion {data.get('schemaVersion')!r}: only schema 2 (OCI, Docker v2) "
                         "is read")
    if not is_index(data):
        media = data.get("mediaType")
        if media is not None and media not in MANIFEST_TYPES:
            raise ValueError(f"unsupported manifest media type {media!r}")
        if not isinstance(data.get("config"), dict):
            raise ValueError("the image manifest has no config")
    return data


def platforms(index: Mapping[str, Any]) -> list[str]:
    """``os/arch[/variant]`` of each entry of an index (attestations, ``unknown/unknown``, left out)."""
    out = []
    for m in index.get("manifests") or []:
        p = m.get("platform") if isinstance(m, dict) else None
        if isinstance(p, dict) and p.get("architecture") and p.get("architecture") != "unknown":
            out.append("/".join(str(p[k]) for k in ("os", "architecture", "variant") if p.get(k)))
    return out


def pick(index: Mapping[str, Any], arch: str) -> str:
    """The digest of the index's ``linux/ARCH`` image (the first, if several variants)."""
    for m in index.get("manifests") or []:
        if not isinstance(m, dict):
            continue
        p = m.get("platform")
        media = m.get("mediaType", MANIFEST_TYPES[0])
        if isinstance(p, dict) and p.get("os") == "linux" and p.get("architecture") == arch \
                and media in MANIFEST_TYPES:
            digest = str(m.get("digest", ""))
            if not _DIGEST.match(digest):
                raise ValueError(f"the index's linux/{arch} entry has a malformed digest {digest!r}")
            return digest
    offered = ", ".join(platforms(index)) or "none"
    raise ValueError(f"no linux/{arch} image in the index (it has {offered})")


@dataclass(frozen=True)
class ImageConfig:
    """What golden reads from an image's config (``skopeo inspect --config``)."""

    architecture: str
    env: Mapping[str, str]
    labels: Mapping[str, str]
    history: Sequence[str]


def parse_config(raw: str) -> ImageConfig:
    """``skopeo inspect --config`` output (the OCI image config)."""
    data = _json_object(raw, "the image config")
    cfg = data.get("config") or {}
    if not isinstance(cfg, dict):
        raise ValueError("the image config's config is not an object")
    env: dict[str, str] = {}
    items, labels_in, history_in = cfg.get("Env") or [], cfg.get("Labels") or {}, data.get("history") or []
    if not (isinstance(items, list) and isinstance(labels_in, dict) and isinstance(history_in, list)):
        raise ValueError("the image config's Env, Labels or history has the wrong type")
    for item in items:
        key, sep, value = str(item).partition("=")
        if sep:
            env[key] = value
    labels = {str(k): str(v) for k, v in labels_in.items()}
    history = [str(h.get("created_by", "")) for h in history_in if isinstance(h, dict)]
    return ImageConfig(architecture=str(data.get("architecture", "")), env=env, labels=labels, history=history)


def cuda_version(config: ImageConfig) -> str | None:
    """``CUDA_VERSION`` (NVIDIA's CUDA and NGC images set it) as ``X.Y[.Z]``, else the
    ``cuda>=X.Y`` of ``NVIDIA_REQUIRE_CUDA``; None when the config names no CUDA at all.

    NGC images add a build number (``CUDA_VERSION=12.9.0.043``): it is dropped, the
    lock records the toolkit release ``12.9.0``.
    """
    m = re.match(r"(\d{1,3}\.\d{1,3}(?:\.\d{1,4})?)(?:\.\d+)*$", config.env.get("CUDA_VERSION", ""))
    if m:
        return m.group(1)
    m = re.search(r"(?:^|\s)cuda>=(\d+\.\d+)", config.env.get("NVIDIA_REQUIRE_CUDA", ""))
    return m.group(1) if m else None


def compat(config: ImageConfig) -> str:
    """Whether the image carries CUDA forward compatibility (the ``cuda-compat`` libraries).

    ``yes`` on any of:

    * ``NV_CUDA_COMPAT_PACKAGE`` non-empty: NVIDIA's ``nvidia/cuda`` images set it to the
      package their Dockerfile installs (``apt-get install ... ${NV_CUDA_COMPAT_PACKAGE}``);
    * ``_CUDA_COMPAT_PATH`` set: NGC images (PyTorch, TensorFlow, Triton) point their
      entrypoint's compat check at ``/usr/local/cuda/compat`` with it;
    * ``LD_LIBRARY_PATH``, a label or a history line naming ``/usr/local/cuda*/compat``, or
      a history line installing ``cuda-compat-X-Y``.

    ``no`` only for an image built by NVIDIA's CUDA recipe (``NV_CUDA_CUDART_VERSION`` set)
    whose ``NV_CUDA_COMPAT_PACKAGE`` is empty or absent: that recipe installs exactly that
    variable. ``unknown`` otherwise: a config cannot show what a layer holds.
    """
    env = config.env
    texts = [env.get("LD_LIBRARY_PATH", ""), *config.labels.values(), *config.history]
    if (env.get("NV_CUDA_COMPAT_PACKAGE") or env.get("_CUDA_COMPAT_PATH")
            or any(_COMPAT_DIR.search(t) for t in texts) or any(_COMPAT_INSTALL.search(h) for h in config.history)):
        return "yes"
    if env.get("NV_CUDA_CUDART_VERSION"):
        return "no"
    return "unknown"


def facts(workload: Workload, digest: str, arch: str, config: ImageConfig) -> WorkloadFacts:
    """A workload's facts from its resolved digest and config."""
    return WorkloadFacts(name=workload.name, image=str(workload.image), digest=digest, arch=arch,
                         cuda_version=cuda_version(config),
                         require_cuda=config.env.get("NVIDIA_REQUIRE_CUDA") or None,
                         compat=compat(config))


# -- skopeo ----------------------------------------------------------------------


def skopeo_argv(*args: str) -> list[str]:
    """``skopeo [--registries-conf PATH] ARGS``: the variable passed on as the flag for old skopeo."""
    conf = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    return ["skopeo", *(["--registries-conf", conf] if conf else []), *args]


def _summary(detail: str) -> str:
    """skopeo's ``level=fatal msg="..."`` reduced to what went wrong."""
    m = re.search(r'msg="((?:[^"\\]|\\.)*)"', detail)
    text = m.group(1).replace('\\"', '"') if m else detail
    return re.sub(r'^Error parsing image name "[^"]*": ', "", text)


def _skopeo(workload: Workload, ref: ImageRef, *args: str) -> str:
    where = f"workloads.{workload.name}"
    try:
        return run.run(skopeo_argv("inspect", *args), timeout=_SKOPEO_TIMEOUT_S).stdout
    except StepFailed as exc:
        msg = exc.message  # "skopeo exited with status 1: <stderr tail>", "timed out after 120s: ..."
        detail = msg.split(": ", 1)[1] if " exited with status " in msg else msg.split(": ", 1)[0]
        raise GoldenError(f"cannot read {ref} from registry {ref.registry}: {_summary(detail)}",
                          where=where) from None


def inspect(workload: Workload, arch: str) -> WorkloadFacts:
    """Resolve one workload image for ``arch`` (``amd64`` | ``arm64``) to its digest and CUDA facts.

    Raises a GoldenError naming the workload and registry when the registry
    cannot be reached, does not know the image, or serves something else.
    """
    where = f"workloads.{workload.name}"
    if not workload.image:
        raise GoldenError("has no image to inspect", where=where)
    try:
        ref = parse_reference(workload.image)
    except ValueError as exc:
        raise GoldenError(str(exc), where=where, key="image") from None
    try:
        raw = _skopeo(workload, ref, "--raw", f"docker://{ref}")
        top = parse_manifest(raw)
        if ref.digest and sha256_digest(raw) != ref.digest:
            raise ValueError(f"the registry's manifest hashes to {sha256_digest(raw)}, not {ref.digest}")
        if is_index(top):
            digest = pick(top, arch)
            raw = _skopeo(workload, ref, "--raw", ref.by_digest(digest))
            if sha256_digest(raw) != digest:
                raise ValueError(f"the linux/{arch} manifest hashes to {sha256_digest(raw)}, not {digest}")
            if is_index(parse_manifest(raw)):
                raise ValueError(f"the linux/{arch} entry is itself an index")
        else:
            digest = sha256_digest(raw)
        config = parse_config(_skopeo(workload, ref, "--config", ref.by_digest(digest)))
    except ValueError as exc:
        raise GoldenError(f"{ref} from registry {ref.registry}: {exc}", where=where) from None
    if config.architecture and config.architecture != arch:
        raise GoldenError(f"{ref} from registry {ref.registry} is a {config.architecture} image; the profile's "
                          f"arch is {arch}", where=where)
    return facts(workload, digest, arch, config)

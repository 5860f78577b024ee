"""Workloads: the containers a fleet will run on an image, as a profile names them.

A profile's ``workloads:`` lists images by registry reference (and, for a
workload without an image, the CUDA version it needs). Resolve
(golden/registry.py) reads each image's config and records
:class:`WorkloadFacts`; the gate (golden/gate_workloads.py) checks both against
the driver's CUDA ceiling. This module owns the model and the two parsers
everything else leans on: the registry reference and ``NVIDIA_REQUIRE_CUDA``::

    >>> parse_reference("nvcr.io/nvidia/pytorch:25.04-py3")
    'nvcr.io/nvidia/pytorch:25.04-py3'
    >>> req = parse_require_cuda("cuda>=12.9 brand=tesla,driver>=535,driver<536")
    >>> req.min_cuda, [(a.brand, a.driver_low, a.driver_high) for a in req.alternatives]
    ('12.9', [('tesla', '535', '536')])
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from golden import versions
from golden.profile_reader import Reader, show

__all__ = ["COMPAT", "MAX_WORKLOADS", "NAME", "Alternative", "Constraint", "Reference", "RequireCuda",
           "Workload", "WorkloadFacts", "cuda_minor", "derive_name", "parse_reference",
           "parse_require_cuda", "read_workloads", "split_reference"]

#: A workload's name, as given or derived: it appears in messages, the lock and the image's tags.
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
#: How many workloads one profile may list (a bound for hostile input; real profiles have a few).
MAX_WORKLOADS = 64
#: Whether an image ships the cuda-compat libraries (forward compatibility).
COMPAT = ("yes", "no", "unknown")

# The reference grammar of the distribution project (reference/regexp.go), restricted to
# what golden pins: a sha256 digest only, no IPv6 literal hosts.
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::(?P<port>[0-9]{{1,5}}))?")
_PATH_PART = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
#: The repository name's limit in the distribution project (NameTotalLengthMax).
_NAME_MAX = 255
ALLOWED_REFERENCE = ("a registry reference [host[:port]/]path[:tag][@sha256:<64 hex>] with a tag, a "
                     "digest or both, e.g. nvcr.io/nvidia/pytorch:25.04-py3: no scheme, no spaces, the "
                     "path in lower case")


class Reference(NamedTuple):
    """A reference taken apart: ``domain`` is None for a Docker Hub short name."""

    domain: str | None
    path: str
    tag: str | None
    digest: str | None


def split_reference(text: str) -> Reference:
    """Take a reference apart, or raise ValueError saying what is allowed."""
    def bad(why: str) -> ValueError:
        return ValueError(f"{ALLOWED_REFERENCE}; {why}: {show(text)}")

    if not isinstance(text, str) or not text:
        raise bad("got an empty or non-text value")
    if re.search(r"[\s\x00-\x1f\x7f]", text):
        raise bad("it has whitespace or control characters")
    if "://" in text:
        raise bad("a scheme is not part of a reference (skopeo adds docker://)")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise bad("the digest must be sha256: and 64 lower-case hex digits")
    head, _, last = rest.rpartition("/")
    tag = None
    if ":" in last:
        last, tag = last.split(":", 1)
        if not _TAG.fullmatch(tag):
            raise bad("a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")
    name = f"{head}/{last}" if head else last
    parts = name.split("/")
    domain = None
    # The distribution rule: the first part names a registry when it has a '.' or a ':', is
    # localhost, or has upper-case letters (which a repository path may not).
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"
                           or parts[0] != parts[0].lower()):
        domain, parts = parts[0], parts[1:]
        m = _DOMAIN.fullmatch(domain)
        if m is None:
            raise bad("the registry host is letters, digits, '-' and '.', with an optional :port")
        if m["port"] is not None and not 1 <= int(m["port"]) <= 65535:
            raise bad("a port is 1 to 65535")
    for part in parts:
        if not _PATH_PART.fullmatch(part):
            raise bad("each path part is lower-case letters and digits, joined by '.', '_', '__' or '-'")
    if len(name) > _NAME_MAX:
        raise bad(f"the name is longer than {_NAME_MAX} characters")
    if tag is None and digest is None:
        raise bad("give a tag or a digest (an implicit :latest is not pinned to anything)")
    return Reference(domain, "/".join(parts), tag, digest)


def parse_reference(text: str) -> str:
    """``text`` when it is a registry reference golden accepts, else ValueError with what is allowed."""
    split_reference(text)
    return text


def derive_name(image: str) -> str:
    """A workload's default name: the repository's last path part and the tag.

    >>> derive_name("nvcr.io/nvidia/pytorch:25.04-py3"), derive_name("r.example/t/trainer@sha256:" + "0" * 64)
    ('pytorch-25.04-py3', 'trainer')
    """
    ref = split_reference(image)
    last = ref.path.rsplit("/", 1)[-1]
    name = f"{last}-{ref.tag}".lower() if ref.tag else last
    return name[:63].rstrip("._-") or last[:63]


def cuda_minor(text: str | None) -> str | None:
    """``"12.9.1"`` or ``"12.9"`` -> ``"12.9"``; None for anything else."""
    m = re.match(r"([0-9]{1,3})\.([0-9]{1,3})(?:\.[0-9]+)*$", text or "")
    return f"{int(m[1])}.{int(m[2])}" if m else None


# -- NVIDIA_REQUIRE_CUDA ---------------------------------------------------------

#: The operators of the NVIDIA Container Toolkit's constraints, longest first.
_OPERATORS = ("!=", "<=", ">=", "=", "<", ">")
#: The properties the toolkit checks (internal/requirements): versions, and the GPU's brand.
VERSION_PROPERTIES = ("cuda", "driver", "arch")
PROPERTIES = (*VERSION_PROPERTIES, "brand")
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+){0,2}")


class Constraint(NamedTuple):
    """One factor, ``driver>=535``: a property, an operator and a value."""

    prop: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.prop}{self.op}{self.value}"


class Alternative(NamedTuple):
    """A brand/driver term, ``brand=tesla,driver>=535,driver<536``: the branch range it admits."""

    brand: str | None
    driver_low: str | None       # driver >= this
    driver_high: str | None      # driver < this


@dataclass(frozen=True)
class RequireCuda:
    """``NVIDIA_REQUIRE_CUDA`` parsed the way the NVIDIA Container Toolkit reads it
    (internal/requirements/constraints/factory.go): space-separated terms are ORed, the
    comma-separated constraints of a term ANDed; a property it does not know is skipped."""

    raw: str
    terms: tuple[tuple[Constraint, ...], ...]

    @property
    def min_cuda(self) -> str | None:
        """The CUDA version of the first term that is only ``cuda>=X.Y``: what the image needs
        on a driver of its own major and newer."""
        for term in self.terms:
            if len(term) == 1 and term[0].prop == "cuda" and term[0].op == ">=":
                return term[0].value
        return None

    @property
    def alternatives(self) -> tuple[Alternative, ...]:
        """The terms that name a brand or a driver, as (brand, driver range)."""
        out = []
        for term in self.terms:
            if not any(c.prop in ("brand", "driver") for c in term):
                continue
            brand = next((c.value for c in term if c.prop == "brand" and c.op == "="), None)
            low = next((c.value for c in term if c.prop == "driver" and c.op == ">="), None)
            high = next((c.value for c in term if c.prop == "driver" and c.op == "<"), None)
            out.append(Alternative(brand, low, high))
        return tuple(out)

    def branches(self) -> list[str]:
        """The driver branches the brand/driver alternatives admit, e.g. ``["535", "550"]``."""
        found = {a.driver_low.split(".")[0] for a in self.alternatives if a.driver_low}
        return sorted(found, key=int)

    def summary(self) -> str:
        """A short form for one-line messages: ``cuda>=12.9, or drivers of R535, R550``."""
        parts = [f"cuda>={self.min_cuda}"] if self.min_cuda else []
        branches = self.branches()
        if branches:
            parts.append("drivers of " + ", ".join(f"R{b}" for b in branches))
        return ", or ".join(parts) or self.raw[:80]


def parse_require_cuda(text: str) -> RequireCuda:
    """Parse ``NVIDIA_REQUIRE_CUDA`` (e.g. ``cuda>=12.9 brand=tesla,driver>=535,driver<536``);
    ValueError for a constraint without an operator or with a malformed version, as the
    toolkit refuses those too."""
    if not isinstance(text, str) or len(text) > 16384 or re.search(r"[\x00-\x08\x0a-\x1f\x7f]", text):
        raise ValueError(f"NVIDIA_REQUIRE_CUDA must be one line of text; got {show(text)}")
    terms = []
    for term_text in text.split():
        term = []
        for factor in term_text.split(","):
            if not factor:
                continue
            m = re.fullmatch(r"([a-z]+)(!=|<=|>=|=|<|>)(.+)", factor)
            if m is None:
                raise ValueError(f"NVIDIA_REQUIRE_CUDA: {show(factor)} is not PROPERTY OPERATOR VALUE "
                                 f"(operators {' '.join(_OPERATORS)})")
            prop, op, value = m.groups()
            if prop in VERSION_PROPERTIES and not _VERSION.fullmatch(value):
                raise ValueError(f"NVIDIA_REQUIRE_CUDA: {show(factor)}: {prop} takes a version such as 12.9")
            if prop in PROPERTIES:
                term.append(Constraint(prop, op, value))
        if term:
            terms.append(tuple(term))
    return RequireCuda(raw=text, terms=tuple(terms))


# -- the model ---------------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    """What a profile says: an image, a declared CUDA version, or both (cuda overrides)."""

    name: str
    image: str | None
    cuda: str | None


@dataclass(frozen=True)
class WorkloadFacts:
    """What resolve found in the registry for one workload's image."""

    name: str
    image: str            # as written in the profile
    digest: str           # sha256:... of the manifest for the profile's arch
    arch: str
    cuda_version: str | None        # CUDA_VERSION from the config's Env, e.g. "12.9.1"
    require_cuda: str | None        # NVIDIA_REQUIRE_CUDA, raw
    compat: str                     # "yes" | "no" | "unknown": ships cuda-compat

    def __post_init__(self) -> None:
        if self.compat not in COMPAT:
            raise ValueError(f"compat: one of {' | '.join(COMPAT)}; got {show(self.compat)}")

    @property
    def require(self) -> RequireCuda | None:
        return parse_require_cuda(self.require_cuda) if self.require_cuda else None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "image": self.image, "digest": self.digest, "arch": self.arch,
                "cuda_version": self.cuda_version, "require_cuda": self.require_cuda, "compat": self.compat}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkloadFacts:
        """The facts as the lock records them; ValueError naming the key that is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a mapping of a workload's facts; got {show(data)}")
        keys = ("name", "image", "digest", "arch", "cuda_version", "require_cuda", "compat")
        extra = set(data) - set(keys)
        if extra:
            raise ValueError(f"{sorted(extra)[0]}: unknown key; allowed: {', '.join(keys)}")

        def text(key: str, pattern: re.Pattern[str] | None = None, *, nullable: bool = False) -> str | None:
            value = data.get(key)
            if value is None and nullable:
                return None
            if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
                raise ValueError(f"{key}: got {show(value)}")
            return value

        image = text("image")
        assert image is not None
        try:
            parse_reference(image)
        except ValueError as exc:
            raise ValueError(f"image: {exc}") from None
        require = text("require_cuda", nullable=True)
        if require is not None:
            try:
                parse_require_cuda(require)
            except ValueError as exc:
                raise ValueError(f"require_cuda: {exc}") from None
        return cls(name=str(text("name", NAME)), image=image, digest=str(text("digest", _DIGEST)),
                   arch=str(text("arch", re.compile(r"[a-z0-9]+"))),
                   cuda_version=text("cuda_version", re.compile(r"[0-9]+\.[0-9]+(\.[0-9]+)?"), nullable=True),
                   require_cuda=require,
                   compat=str(text("compat", re.compile("|".join(COMPAT)))))


# -- reading the profile's key -----------------------------------------------------

def read_workloads(r: Reader) -> tuple[Workload, ...]:
    """The profile's ``workloads:`` list; each error names ``workloads[N].KEY`` and its file."""
    entries = r.items("workloads", "workloads, each a mapping with image (a registry reference), "
                                   'cuda ("X.Y") or both, and an optional name', limit=MAX_WORKLOADS)
    out: list[Workload] = []
    seen: dict[str, int] = {}
    for i, e in enumerate(entries):
        e.only("name", "image", "cuda")
        image = e.data.get("image")
        if image is not None:
            if not isinstance(image, str):
                raise e.fail("image", f"{ALLOWED_REFERENCE}; got {show(image)}")
            try:
                parse_reference(image)
            except ValueError as exc:
                raise e.fail("image", str(exc)) from None
        cuda = e.text("cuda", versions.CUDA, 'a CUDA version "X.Y" such as "12.4"', nullable=True)
        if image is None and cuda is None:
            raise e.fail(None, 'give image (a registry reference), cuda ("X.Y"), or both')
        given = e.text("name", NAME, "a name: lower-case letters, digits, '.', '_' and '-', up to 63",
                       nullable=True)
        if given is None and image is None:
            raise e.fail("name", "required without an image: a name such as legacy-solver")
        name = given or derive_name(str(image))
        if name in seen:
            raise e.fail("name", f"{name!r} is also the name of workloads[{seen[name]}]; give each "
                                 "workload its own name:")
        seen[name] = i
        out.append(Workload(name=name, image=image, cuda=cuda))
    return tuple(out)

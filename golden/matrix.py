"""`invoke matrix`: the knowledge base as plain, aligned terminal tables.

Three questions, each answered from golden/data only::

    >>> from golden.kb import load
    >>> kb = load()
    >>> "R595" in cuda_answer(kb, "13.2")         # which branches run CUDA 13.2, and how fully
    True
    >>> "570.133.20" in gpu_answer(kb, "b200")    # what a B200 needs
    True
    >>> tables(kb).startswith("Driver branches")  # every branch, toolkit and GPU
    True

Facts whose confidence is not an NVIDIA document or repository say so, so an
UNCONFIRMED number never reads like a settled one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from golden import versions
from golden.errors import GoldenError
from golden.gate import branch_status, unknown_toolkit
from golden.kb import Branch, CudaRelease, Gpu, KnowledgeBase
from golden.versions import DriverVersion, cuda_tuple

OPEN_MODULE = {
    "required": "open required (proprietary unsupported)",
    "recommended": "open recommended (proprietary works)",
    "unsupported": "proprietary only (open unsupported)",
}


def columns(headers: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "") -> list[str]:
    """Left-aligned columns, two spaces apart, a dashed rule under the header.

    >>> columns(["a", "bb"], [["1", "2"]])
    ['a  bb', '-  --', '1  2']
    """
    body = [list(r) for r in rows]
    widths = [max(len(cell) for cell in col) for col in zip(headers, *body, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return indent + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in body)]


def _branch_label(kb: KnowledgeBase, b: Branch, today: date) -> str:
    """``R595`` or ``R610 (EOL)``: the status only when it is not plain active."""
    status = branch_status(kb, b, today)
    extra = [] if status == "active" else [status if status != "unknown" else "EOL unknown"]
    if b.confidence == "unconfirmed":
        extra.append("UNCONFIRMED")
    return f"R{b.name}" + (f" ({', '.join(extra)})" if extra else "")


def _branch_list(kb: KnowledgeBase, branches: Iterable[Branch], today: date) -> str:
    return ", ".join(_branch_label(kb, b, today) for b in branches) or "none"


def _names(branches: Iterable[Branch]) -> str:
    """``R590, R615 (UNCONFIRMED)``: names only, for lists whose status is in their label."""
    return ", ".join(f"R{b.name}" + (" (UNCONFIRMED)" if b.confidence == "unconfirmed" else "")
                     for b in branches) or "none"


def _span(kb: KnowledgeBase, branches: Sequence[Branch]) -> str:
    """``R575 .. R620`` when the branches are a run of consecutive known branches."""
    if not branches:
        return "-"
    every = [b.name for b in _by_number(kb)]
    names = [b.name for b in branches]
    start = every.index(names[0])
    if len(names) > 2 and every[start:start + len(names)] == names:
        return f"R{names[0]} .. R{names[-1]}"
    return " ".join(f"R{n}" for n in names)


#: Weakest first, so a table row shows the least certain fact it rests on.
CONFIDENCE_ORDER = ("unconfirmed", "secondary", "nvidia-repo", "nvidia-doc")


def _weakest(confidences: Iterable[str]) -> str:
    rank = {c: i for i, c in enumerate(CONFIDENCE_ORDER)}
    return _confidence(min(confidences, key=lambda c: rank.get(c, 0)))


def _confidence(confidence: str) -> str:
    return "UNCONFIRMED" if confidence == "unconfirmed" else confidence


def _by_number(kb: KnowledgeBase) -> list[Branch]:
    return sorted(kb.branches.values(), key=lambda b: int(b.name))


# -- which branches run a toolkit -------------------------------------------------

def full_branches(kb: KnowledgeBase, minor: str) -> list[Branch]:
    """Branches whose CUDA ceiling is at least the toolkit ``X.Y``."""
    return sorted(kb.branches_for_cuda(minor), key=lambda b: int(b.name))


def mvc_branches(kb: KnowledgeBase, minor: str) -> list[Branch]:
    """Branches that run ``X.Y`` only under minor-version compatibility [MVC].

    Same major as the toolkit, a lower ceiling, and at or above the major's floor.
    """
    major = cuda_tuple(minor)[0]
    floor = kb.mvc_floor(str(major))
    if floor is None:
        return []
    return [b for b in _by_number(kb)
            if cuda_tuple(b.max_cuda)[0] == major and cuda_tuple(b.max_cuda) < cuda_tuple(minor)
            and int(b.name) >= floor[0].parts[0]]


def _driver_span(releases: Sequence[CudaRelease]) -> str:
    known = sorted({r.min_driver for r in releases if r.min_driver}, key=DriverVersion)
    if not known:
        return "UNCONFIRMED"
    return known[0] if len(known) == 1 else f"{known[0]} .. {known[-1]}"


# -- the three answers --------------------------------------------------------------

def tables(kb: KnowledgeBase, today: date | None = None) -> str:
    """Driver branches, CUDA toolkits and GPUs, one table each."""
    today = today or date.today()
    out = [f"Driver branches (status as of {today.isoformat()})"]
    out += columns(
        ["branch", "type", "CUDA ceiling", "EOL", "status", "naming", "confidence", "source"],
        [[f"R{b.name}", b.type or "?", b.max_cuda, b.eol or "unknown", branch_status(kb, b, today),
          b.naming + (", no proprietary" if b.proprietary_removed else ""),
          _confidence(b.confidence), b.source]
         for b in _by_number(kb)])
    out += ["naming: suffixed = package names carry the branch (nvidia-open-580, "
            "cuda-drivers-580);",
            "        pinning = nvidia-driver-pinning-<branch> first, then nvidia-open, "
            "cuda-drivers",
            ""]
    out.append("CUDA toolkits (minimum driver from Table 3 [RN]; MVC floor per major [MVC])")
    rows = []
    for minor in kb.cuda_minors():
        rel = sorted(kb.releases_of(minor), key=lambda r: int(r.version.split(".")[2]))
        floor = kb.mvc_floor(minor.split(".")[0])
        rows.append([minor, ", ".join(r.version.rsplit(".", 1)[1] for r in rel),
                     _driver_span(rel), f">= {floor[0]}" if floor else "?",
                     _span(kb, full_branches(kb, minor)), _span(kb, mvc_branches(kb, minor)),
                     _weakest(r.confidence for r in rel)])
    out += columns(["CUDA", "updates", "minimum driver", "MVC floor", "runs fully on",
                    "under MVC only", "confidence"], rows)
    out.append("")
    out.append("GPUs")
    out += columns(
        ["gpu", "name", "arch", "kernel module", "min driver", "NVSwitch", "extras",
         "AWS", "confidence"],
        [[g.key, g.name, g.arch, kb.architectures[g.arch].open_module,
          g.min_driver or "?", "yes (FM)" if g.nvswitch else "no",
          " ".join(g.extras) or "-", " ".join(g.aws) or "-", _confidence(g.confidence)]
         for g in kb.gpus.values()])
    out.append("kernel module: required = open only; recommended = open preferred, proprietary "
               "works; unsupported = proprietary only")
    out.append("NVSwitch: yes (FM) = nvidia-fabricmanager at exactly the driver version")
    return "\n".join(out)


def cuda_answer(kb: KnowledgeBase, cuda: str, today: date | None = None) -> str:
    """Which drivers run a toolkit ``X.Y`` (or one release ``X.Y.Z``), and how fully."""
    today = today or date.today()
    if versions.CUDA.fullmatch(cuda):
        minor, releases = cuda, kb.releases_of(cuda)
    elif versions.CUDA_RELEASE.fullmatch(cuda):
        minor = ".".join(cuda.split(".")[:2])
        releases = [r for r in kb.releases_of(minor) if r.version == cuda]
        if not releases and kb.releases_of(minor):
            known = ", ".join(r.version for r in kb.releases_of(minor))
            raise GoldenError(f"CUDA {cuda} is not a release; releases of {minor}: {known} [RN]",
                              key="--cuda")
    else:
        raise GoldenError(f"not a CUDA version: {cuda!r}; give X.Y such as 13.2 (or X.Y.Z)",
                          key="--cuda")
    if not releases:
        raise GoldenError(unknown_toolkit(kb, minor), key="--cuda")
    major = minor.split(".")[0]
    out = [f"CUDA {cuda}"]
    out += columns(["release", "minimum driver", "confidence", "source"],
                   [[r.version, r.min_driver or "UNCONFIRMED", _confidence(r.confidence),
                     r.source + (f" ({r.note})" if r.note else "")]
                    for r in sorted(releases, key=lambda r: int(r.version.split(".")[2]))],
                   indent="  ")
    floor = kb.mvc_floor(major)
    if floor is not None:
        out.append(f"minor-version compatibility floor for CUDA {major}.x: driver >= {floor[0]} "
                   f"{floor[1].cite}")
    out.append(f"runs fully on (CUDA ceiling >= {minor}): "
               f"{_branch_list(kb, full_branches(kb, minor), today)}")
    out.append(f"runs under minor-version compatibility only (no PTX JIT of {minor} code, "
               f"newer-driver APIs fail): {_branch_list(kb, mvc_branches(kb, minor), today)}")
    return "\n".join(out)


def gpu_branches(kb: KnowledgeBase, gpu: Gpu) -> list[Branch]:
    """Branches that can drive a GPU: new enough for it, not past its architecture's last."""
    arch = kb.architectures[gpu.arch]
    first = DriverVersion(gpu.min_driver).parts[0] if gpu.min_driver else 0
    last = int(arch.last_branch) if arch.last_branch else 10**6
    proprietary_only = arch.open_module == "unsupported"
    return [b for b in _by_number(kb)
            if first <= int(b.name) <= last and not (proprietary_only and b.proprietary_removed)
            and b.name not in gpu.not_with_branches]


def gpu_answer(kb: KnowledgeBase, gpu: str, today: date | None = None) -> str:
    """What a GPU needs: module flavour, minimum driver, branches, fabric manager, AWS."""
    today = today or date.today()
    g = kb.gpus.get(gpu.lower())
    if g is None:
        raise GoldenError(f"unknown GPU {gpu!r}; known: {', '.join(kb.gpus)}", key="--gpu")
    arch = kb.architectures[g.arch]
    branches = gpu_branches(kb, g)
    usable = [b for b in branches if branch_status(kb, b, today) in ("active", "EOL soon")]
    # A superseded new feature branch is as good as ended: no fixes after its successor.
    eol = [b for b in branches if branch_status(kb, b, today) in ("EOL", "superseded")]
    unknown = [b for b in branches if branch_status(kb, b, today) == "unknown"]
    fm = ("yes: nvidia-fabricmanager at exactly the driver version" if g.nvswitch
          else "no NVSwitch: no fabric manager")
    rows = [
        ["architecture", f"{arch.name} (first CUDA {arch.first_cuda}) {arch.cite}"],
        ["kernel module", f"{OPEN_MODULE.get(arch.open_module, arch.open_module)} {arch.cite}"],
        ["minimum driver", (g.min_driver or "unknown")
         + (f"; {g.min_driver_note}" if g.min_driver_note else "")],
        ["minimum CUDA", g.min_cuda or f"{arch.first_cuda} (architecture)"],
        ["active branches", _branch_list(kb, usable, today)],
        ["EOL branches", ", ".join(
            _names([b]) + (" (superseded)" if branch_status(kb, b, today) == "superseded" else "")
            for b in eol) or "none"],
        ["EOL unknown", _names(unknown)],
        ["NVSwitch", fm],
        ["extras", " ".join(g.extras) or "none"],
        ["AWS", " ".join(g.aws) or "none known"],
    ]
    if arch.last_branch:
        rows.insert(4, ["last branch", f"R{arch.last_branch} {arch.cite}"])
    if g.not_with_branches:
        rows.insert(4, ["never with", f"{' '.join('R' + b for b in g.not_with_branches)} {g.cite}"])
    if g.note:
        rows.append(["note", g.note])
    head = f"{g.key}: {g.name}, PCI id {g.pci_id or 'not known'} {g.cite}"
    width = max(len(r[0]) for r in rows)
    return "\n".join([head, *(f"  {k.ljust(width)}  {v}" for k, v in rows)])

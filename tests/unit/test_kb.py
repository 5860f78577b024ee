"""golden/data agrees with shared/facts/nvidia-facts.md, and every fact says where it came from.

The facts file is read at test time: its Table 3 rows (section 1a) and its
machine-readable YAML (section 9) are the reference. Locally the test skips
when ../shared is absent; in CI (CI=true) a missing file is a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

import golden
from golden.gate import expected_naming
from golden.kb import DATA, Fact, load

FACTS = Path(golden.ROOT).parent / "shared/facts/nvidia-facts.md"
KB = load()
CONFIDENCES = {"nvidia-doc", "nvidia-repo", "secondary", "unconfirmed"}
REQUIRED_GPUS = ("t4", "a10g", "a100-sxm4", "l4", "l40s", "h100-pcie", "h100-sxm", "h200-sxm",
                 "gh200", "b200", "b300", "gb200", "rtx-pro-6000")
# Source keys golden's data adds to the facts file's table (read directly, or from the
# 2026-12 audit in shared/research, not via the facts file).
GOLDEN_SOURCES = {"secondary", "DEB", "DEBCUDA", "DEB13", "DEBAPPT", "APPTPPA", "PCIIDS", "CIG", "EKS"}
# Data key -> the names section 9 of the facts file gives the same GPU.
FACT_NAMES = {
    "t4": ("T4",), "a10g": ("A10G",), "a100-sxm4": ("A100-SXM4-40GB", "A100-SXM4-80GB"),
    "l4": ("L4",), "l40s": ("L40S",), "h100-pcie": ("H100-PCIe",),
    "h100-sxm": ("H100-SXM-80GB-HBM3",), "h200-sxm": ("H200",), "gh200": ("GH200",),
    "b200": ("B200",), "b300": ("B300-SXM6-AC",), "gb200": ("GB200",), "gb300": ("GB300",),
    "rtx-pro-6000": ("RTX-PRO-6000-Blackwell-Server-Edition",),
}


@cache
def facts_text() -> str:
    if not FACTS.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{FACTS} is missing (CI runs with ../shared beside the repository)")
        pytest.skip(f"{FACTS} not found")
    return FACTS.read_text(encoding="utf-8")


@cache
def section9() -> dict[str, Any]:
    text = facts_text()
    start = text.index("## 9.")
    block = re.search(r"```yaml\n(.*?)```", text[start:], re.S)
    assert block, "no yaml block in section 9"
    data = yaml.safe_load(block.group(1))
    assert isinstance(data, dict)
    return data


def table3() -> list[tuple[str, str | None, str]]:
    """(toolkit release, driver or None, confidence) for each row of section 1a."""
    text = facts_text()
    section = text[text.index("### 1a."):text.index("### 1b.")]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        version = re.match(r"\d+\.\d+\.\d+", cells[1]) if len(cells) == 4 else None
        if version is None or not cells[0].startswith("CUDA "):
            continue
        driver = cells[2] if re.fullmatch(r"\d{3}\.\d+(\.\d+)?", cells[2]) else None
        if driver is None:
            assert "UNCONFIRMED" in cells[2] or "UNCONFIRMED" in cells[3], line
            confidence = "unconfirmed"
        else:
            # NVIDIA's own: the release notes, or NVIDIA's redistrib manifests
            # (their cuda_compat component is the driver bundled with the toolkit).
            nvidia = cells[3] == "[RN]" or cells[3].startswith("[REDIST] ")
            confidence = "nvidia-doc" if nvidia else "secondary"
        rows.append((version.group(0), driver, confidence))
    return rows


def test_table3_parses() -> None:
    rows = table3()
    assert len(rows) >= 30
    assert ("13.2.0", "595.45.04", "nvidia-doc") in rows
    # NVIDIA's manifests count as NVIDIA's own source; 11.8 is the oldest row.
    assert ("13.3.0", "610.43.02", "nvidia-doc") in rows
    assert ("11.8.0", "520.61.05", "nvidia-doc") in rows


def test_every_table3_row_agrees_with_cuda_yaml() -> None:
    rows = table3()
    assert {v for v, _, _ in rows} == set(KB.cuda_releases)
    for version, driver, confidence in rows:
        rel = KB.cuda_releases[version]
        assert (rel.min_driver, rel.confidence) == (driver, confidence), version


def test_section9_cuda_min_driver_agrees() -> None:
    for version, value in section9()["cuda_min_driver"].items():
        driver = value["driver"] if isinstance(value, dict) else value
        assert KB.cuda_releases[str(version)].min_driver == driver, version


def test_section9_mvc_floors_agree() -> None:
    for major, value in section9()["cuda_major_compat"].items():
        assert KB.cuda_majors[str(major)][0] == value["min_driver"], major


def test_branches_agree_with_section9() -> None:
    facts = section9()["driver_branches"]
    assert {k.lstrip("R") for k in facts} == set(KB.branches)
    for key, fact in facts.items():
        b = KB.branches[key.lstrip("R")]
        assert b.max_cuda == fact["max_cuda"], key
        assert b.eol == fact["eol"], key
        assert b.type == fact["type"], key
        assert b.confidence == fact["confidence"], key
        assert b.proprietary_removed == bool(fact.get("proprietary_modules_removed")), key
        if "latest_known" in fact:
            assert b.latest_known == fact["latest_known"], key
        superseded_by = fact.get("superseded_by")
        assert b.superseded_by == (superseded_by.lstrip("R") if superseded_by else None), key


def test_new_feature_branches_end_with_their_successor() -> None:
    """An NFB has no end-of-life date; the branch that supersedes it ends it."""
    r615 = KB.branches["615"]
    assert (r615.type, r615.eol) == ("NFB", None)
    successor = KB.successor(r615)
    assert successor is not None and successor.name == "620"
    assert KB.successor(KB.branches["610"]) is None      # it has a date of its own
    assert KB.successor(KB.branches["620"]) is None      # not an NFB


def test_branch_naming_follows_the_branch_number() -> None:
    for b in KB.branches.values():
        assert b.naming == expected_naming(b.name), b.name


def _facts_gpus() -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
    """Facts GPU name -> (architecture, architecture entry, GPU entry)."""
    out = {}
    for arch, entry in section9()["gpu_arch"].items():
        for name, gpu in (entry.get("gpus") or {}).items():
            out[name] = (arch.replace("_", "-"), entry, gpu)
    return out


def test_required_gpus_exist() -> None:
    for key in REQUIRED_GPUS:
        g = KB.gpus[key]
        arch = KB.architectures[g.arch]
        assert arch.open_module in ("required", "recommended", "unsupported"), key
        assert g.min_driver, key
        assert isinstance(g.nvswitch, bool) and isinstance(g.aws, tuple), key


@pytest.mark.parametrize("key", sorted(FACT_NAMES))
def test_gpu_agrees_with_section9(key: str) -> None:
    facts = _facts_gpus()
    g = KB.gpus[key]
    entries = [facts[name] for name in FACT_NAMES[key]]
    arch, arch_entry, first = entries[0]
    assert KB.architectures[g.arch].open_module == arch_entry["open_module"], key
    assert g.arch == arch, key
    assert g.pci_id == first["pci_id"], key
    want = first.get("min_driver_hgx") or first.get("min_open_driver")
    if want:
        assert g.min_driver == want, key
    else:   # only a branch is known (T4: R515): the data's version must be of that branch
        assert g.min_driver and g.min_driver.startswith(first["min_open_driver_branch"][1:] + ".")
    assert g.nvswitch == any(e[2].get("nvswitch", False) for e in entries), key
    assert set(g.aws) == {a for e in entries for a in e[2].get("aws", [])}, key
    if "min_cuda" in first:
        assert g.min_cuda == first["min_cuda"], key


def test_volta_is_proprietary_only_up_to_r580() -> None:
    legacy = section9()["gpu_arch"]["legacy_proprietary_only"]
    volta = KB.architectures["volta"]
    assert volta.open_module == legacy["open_module"] == "unsupported"
    assert f"R{volta.last_branch}" == legacy["max_driver_branch"]
    assert set(KB.gpus["v100"].aws) == set(legacy["aws"]["V100"])


def test_container_toolkits_agree_with_section9() -> None:
    known = set(section9()["packages"]["container_toolkit"]["known_versions"])
    confirmed = {v for v, f in KB.container_toolkits.items() if f.confidence != "unconfirmed"}
    assert confirmed == known
    assert KB.container_toolkits["1.20.1"].confidence == "unconfirmed"


# -- every fact carries a source and a confidence --------------------------------

def _walk(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def _data_files() -> list[Path]:
    return sorted(p for p in DATA.glob("*.yaml") if p.name != "sources.yaml")


def _facts() -> Iterator[tuple[str, dict[str, Any], set[str]]]:
    """Every mapping in golden/data that carries a source or a confidence, with the
    source keys its file defines itself (a top-level ``sources:`` mapping)."""
    for path in _data_files():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        local = set(data.get("sources") or {}) if isinstance(data, dict) else set()
        for where, node in _walk(data, path.stem):
            if "source" in node or "confidence" in node:
                yield where, node, local


def test_fact_collections_carry_source_and_confidence() -> None:
    collections: list[Mapping[str, Fact]] = [
        KB.branches, KB.cuda_releases, KB.architectures, KB.gpus, KB.container_toolkits,
        {k: f for k, (_, f) in KB.cuda_majors.items()}]
    for facts in collections:
        for key, fact in facts.items():
            assert fact.source.strip(), key
            assert fact.confidence in CONFIDENCES, key


def test_every_fact_has_both_source_and_confidence() -> None:
    found = list(_facts())
    assert len(found) > 50
    for where, node, _ in found:
        assert str(node.get("source") or "").strip(), f"{where}: no source"
        assert node.get("confidence") in CONFIDENCES, f"{where}: {node.get('confidence')!r}"


def source_keys(source: str) -> Iterator[str]:
    """The words of a ``source`` that name a key: a whole part (``EOLD``) or a part's
    leading upper-case word (``SDV older copy``)."""
    for part in (p.strip() for p in source.split(";")):
        first = part.split()[0] if part else ""
        if part == first or re.fullmatch(r"[A-Z][A-Z0-9]+", first):
            yield first


def test_source_keys_parse() -> None:
    assert list(source_keys("SDV older copy; EOLD; secondary (AWS)")) == ["SDV", "EOLD"]
    assert list(source_keys("secondary")) == ["secondary"]


def test_every_source_key_is_in_sources_yaml() -> None:
    assert "secondary" in KB.sources
    for where, node, local in _facts():
        for key in source_keys(str(node["source"])):
            assert key in KB.sources or key in local, f"{where}: source key {key!r} is unknown"


def test_sources_match_the_facts_source_table() -> None:
    text = facts_text()
    table = set(re.findall(r"^\| \[([A-Z]+)\] \|", text, re.M))
    used = {k for _, node, _ in _facts() for k in source_keys(str(node["source"]))}
    assert used & set(KB.sources) - GOLDEN_SOURCES <= table

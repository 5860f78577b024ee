"""`invoke matrix` output: the numbers and branch lists, not the exact whitespace."""

from __future__ import annotations

import datetime
import re

import pytest

from golden.errors import GoldenError
from golden.kb import load
from golden.matrix import columns, cuda_answer, gpu_answer, tables

TODAY = datetime.date(2026, 11, 20)
KB = load()


def line_after(text: str, label: str) -> str:
    """The rest of the one line that starts with ``label`` (after indentation)."""
    found = [ln.strip()[len(label):] for ln in text.splitlines() if ln.strip().startswith(label)]
    assert len(found) == 1, (label, text)
    return found[0]


def branches_in(text: str) -> set[str]:
    return set(re.findall(r"\bR(\d{3})\b", text))


def test_columns_align() -> None:
    lines = columns(["branch", "CUDA"], [["R580", "13.0"], ["R1000", "9.9"]])
    assert lines[0].index("CUDA") == lines[2].index("13.0") == lines[3].index("9.9")
    assert set(lines[1]) <= {"-", " "}


def test_tables_list_every_branch_and_gpu() -> None:
    text = tables(KB, TODAY)
    rows = {ln.split()[0]: ln for ln in text.splitlines() if ln.split()}
    for b in KB.branches.values():
        row = rows[f"R{b.name}"]
        assert b.max_cuda in row and (b.eol or "unknown") in row and b.naming in row
    for g in KB.gpus.values():
        row = rows[g.key]
        assert g.arch in row and all(family in row for family in g.aws)
        assert (g.min_driver or "?") in row


@pytest.mark.parametrize(("branch", "status"), [("535", "EOL"), ("580", "active"),
                                                ("595", "active"), ("610", "EOL"),
                                                ("615", "superseded"), ("620", "active")])
def test_tables_branch_status(branch: str, status: str) -> None:
    row = next(ln for ln in tables(KB, TODAY).splitlines() if ln.startswith(f"R{branch} "))
    assert row.split()[4] == status


def test_tables_status_moves_with_today() -> None:
    row = next(ln for ln in tables(KB, datetime.date(2027, 1, 15)).splitlines()
               if ln.startswith("R595 "))
    assert "EOL soon" in row


def test_tables_cuda_rows() -> None:
    rows = {ln.split()[0]: ln for ln in tables(KB, TODAY).splitlines() if ln.split()}
    assert "12.7" not in rows
    assert "595.45.04 .. 595.71.05" in rows["13.2"]
    assert "UNCONFIRMED" in rows["13.5"]


def test_cuda_13_2() -> None:
    text = cuda_answer(KB, "13.2", TODAY)
    for release, driver in (("13.2.0", "595.45.04"), ("13.2.1", "595.58.03"),
                            ("13.2.2", "595.71.05")):
        assert re.search(rf"^\s*{re.escape(release)}\s+{re.escape(driver)}\b", text, re.M)
    assert ">= 580" in line_after(text, "minor-version compatibility floor for CUDA 13.x")
    full = branches_in(line_after(text, "runs fully on"))
    mvc = branches_in(line_after(text, "runs under minor-version compatibility only"))
    assert full == {b.name for b in KB.branches.values()
                    if tuple(map(int, b.max_cuda.split("."))) >= (13, 2)}
    assert full == {"595", "610", "615", "620"}
    assert mvc == {"580", "590"}


def test_cuda_12_9_mvc_reaches_back_to_the_floor() -> None:
    text = cuda_answer(KB, "12.9", TODAY)
    assert ">= 525.60.13" in text
    full = branches_in(line_after(text, "runs fully on"))
    mvc = branches_in(line_after(text, "runs under minor-version compatibility only"))
    assert {"575", "580", "595"} <= full and "570" not in full
    assert {"525", "565", "570"} <= mvc and not mvc & full


def test_cuda_one_release() -> None:
    text = cuda_answer(KB, "13.0.1", TODAY)
    assert "580.82.07" in text and "580.65.06" not in text


def test_cuda_unconfirmed_release_says_so() -> None:
    text = cuda_answer(KB, "13.4", TODAY)
    assert "UNCONFIRMED" in text
    assert branches_in(line_after(text, "runs fully on")) == {"615", "620"}


@pytest.mark.parametrize(("cuda", "says"), [("12.7", "never released"), ("11.7", "11.8 to 13.5"),
                                            ("13", "not a CUDA version"),
                                            ("13.2; rm", "not a CUDA version"),
                                            ("13.2.9", "13.2.0, 13.2.1, 13.2.2")])
def test_cuda_errors(cuda: str, says: str) -> None:
    with pytest.raises(GoldenError) as exc:
        cuda_answer(KB, cuda, TODAY)
    assert says in exc.value.line() and "\n" not in exc.value.line()
    assert exc.value.key == "--cuda"


def test_every_toolkit_answers() -> None:
    for minor in KB.cuda_minors():
        assert f"CUDA {minor}" in cuda_answer(KB, minor, TODAY)


def test_gpu_b200() -> None:
    text = gpu_answer(KB, "b200", TODAY)
    assert "570.133.20" in line_after(text, "minimum driver")
    assert "open required" in line_after(text, "kernel module")
    assert branches_in(line_after(text, "active branches")) == {"580", "595", "620"}
    eol = line_after(text, "EOL branches")
    assert {"570", "575", "590", "610", "615"} <= branches_in(eol)
    assert "R615 (superseded)" in eol
    every = branches_in("\n".join(ln for ln in text.splitlines() if "branches" in ln))
    assert not {"535", "565"} & every
    assert "fabricmanager" in line_after(text, "NVSwitch")
    assert "nvlsm" in line_after(text, "extras") and "p6-b200" in line_after(text, "AWS")


def test_gpu_g6f_never_with_r595() -> None:
    text = gpu_answer(KB, "l4-g6f", TODAY)
    assert "R595" in line_after(text, "never with") and "[EKS" in line_after(text, "never with")
    listed = branches_in("\n".join(ln for ln in text.splitlines() if "branches" in ln))
    assert "595" not in listed and {"580", "620"} <= listed


def test_cuda_11_8_is_known() -> None:
    text = cuda_answer(KB, "11.8", TODAY)
    assert re.search(r"^\s*11\.8\.0\s+520\.61\.05\b", text, re.M)


def test_gpu_v100_stops_at_r580() -> None:
    text = gpu_answer(KB, "v100", TODAY)
    assert "R580" in line_after(text, "last branch")
    assert branches_in(line_after(text, "active branches")) == {"580"}
    assert "proprietary only" in line_after(text, "kernel module")


@pytest.mark.parametrize(("gpu", "minimum", "first_branch"),
                         [("h200-sxm", "550.90.07", "550"), ("b300", "580.82.07", "580"),
                          ("rtx-pro-6000", "575.57.08", "575")])
def test_gpu_minimums(gpu: str, minimum: str, first_branch: str) -> None:
    text = gpu_answer(KB, gpu, TODAY)
    assert minimum in line_after(text, "minimum driver")
    listed = branches_in("\n".join(ln for ln in text.splitlines() if "branches" in ln
                                   or "EOL unknown" in ln))
    assert min(listed, key=int) == first_branch


def test_every_gpu_answers() -> None:
    for key, g in KB.gpus.items():
        text = gpu_answer(KB, key.upper(), TODAY)
        assert text.startswith(f"{key}: {g.name}")


def test_unknown_gpu() -> None:
    with pytest.raises(GoldenError) as exc:
        gpu_answer(KB, "rtx4090", TODAY)
    assert "b200" in exc.value.line() and exc.value.key == "--gpu"

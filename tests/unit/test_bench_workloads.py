"""bench/workloads.py's pure parts: the bake's total read from a Packer log, the images it
pushes, and the summary it prints (its numbers are measured by running it, never asserted)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import load_bench

bench = load_bench("workloads")

#: The shape of a real ``packer build -machine-readable`` log (build/NAME/packer.log).
FINISHED = """# packer build -machine-readable -only=null.local .golden-packer-legacy.pkr.hcl
1796178613,,ui,say,==> null.local: Using ssh communicator to connect: 127.0.0.1
1796178700,,ui,message,    null.local: Building module:
1796178850,,ui,say,Build 'null.local' finished after 3 minutes 57 seconds.
1796178850,,ui,say,\\n==> Builds finished. The artifacts of successful builds are:
1796178850,null.local,artifact,1,end
"""
RUNNING = "\n".join(FINISHED.splitlines()[:3]) + "\n"


def test_a_finished_log_spans_its_first_to_last_timestamp() -> None:
    assert bench.packer_log_seconds(FINISHED) == 237
    assert bench.packer_log_seconds(RUNNING) is None          # still running, or failed
    assert bench.packer_log_seconds("Builds finished") is None  # no timestamps at all


def test_the_newest_finished_bake_is_the_one_taken(tmp_path: Path) -> None:
    assert bench.recorded_bake(tmp_path) is None
    for name, text, mtime in [("old", FINISHED.replace("1796178850", "1796178713"), 100),
                              ("new", FINISHED, 200), ("running", RUNNING, 300)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "packer.log").write_text(text, encoding="utf-8")
        os.utime(tmp_path / name / "packer.log", (mtime, mtime))
    got = bench.recorded_bake(tmp_path)
    assert got is not None and got.seconds == 237.0
    assert got.source.startswith(f"{tmp_path / 'new' / 'packer.log'} of 1970-01-01 00:03 UTC: first to last")


def test_the_images_are_distinct_and_every_other_one_is_a_two_arch_index() -> None:
    images = bench.bench_images(20)
    assert len({tag for tag, _ in images}) == 20
    assert [len(imgs) for _, imgs in images[:4]] == [1, 2, 1, 2]
    assert [img.arch for img in images[1][1]] == ["amd64", "arm64"]
    assert any("_CUDA_COMPAT_PATH=/usr/local/cuda/compat" in img.env for _, imgs in images for img in imgs)
    assert all(any(e.startswith("CUDA_VERSION=") for e in img.env) for _, imgs in images for img in imgs)


def test_the_summary_shows_every_number_against_the_bake() -> None:
    bake = bench.BakeTotal(200.0, "--bake-seconds")
    probes = [bench.ProbeTime("12.9", 2.0, 0.5, 1.5, "ok: 100 cudaErrorNoDevice"),
              bench.ProbeTime("13.0", 4.0, 0.5, 1.5, "insufficient-driver: 35 cudaErrorInsufficientDriver")]
    resolved = bench.ResolveTime(3.0, [("a", 1.0), ("b", 2.0)])
    lines = bench.report(bake, probes, resolved, driver="535.261.03")
    assert lines[0] == "bake total: 200 s (--bake-seconds)"
    assert "libcuda1 535.261.03" in lines[2]
    row = lines[4].split()
    assert row[:7] == ["12.9", "2.00", "s", "0.50", "s", "1.50", "s"]
    assert row[7:9] == ["1.00%", "1.00%"] and lines[4].endswith("ok: 100 cudaErrorNoDevice")
    assert lines[6].split()[:9] == ["all", "6.00", "s", "1.00", "s", "3.00", "s", "2.00%", "3.00%"]
    assert lines[8] == "resolve of 2 workloads (registry on 127.0.0.1, skopeo): total 3.00 s = 1.50% of the bake"
    assert lines[9] == "  per workload: median 1.50 s, min 1.00 s, max 2.00 s, median / bake 0.75%"
    assert [line.split() for line in lines[10:]] == [["a", "1.00", "s", "0.50%"], ["b", "2.00", "s", "1.00%"]]

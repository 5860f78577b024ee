"""bench/secureboot.py's pure parts: the clock on golden.run's commands, the spans it gives and the
summary it prints (its numbers are measured by running it, never asserted)."""

from __future__ import annotations

import doctest
import logging

from golden.run import run
from tests.conftest import load_bench

bench = load_bench("secureboot")


def test_doctests() -> None:
    assert doctest.testmod(bench).failed == 0


def test_the_clock_hears_every_command_golden_runs_and_leaves_the_logger_as_it_was() -> None:
    logger = logging.getLogger("golden.run")
    before = (logger.level, logger.propagate, list(logger.handlers))
    with bench.clocked() as clock:
        run(["true"])
        run(["/bin/sleep", "0.3"])
        run(["true"])
    assert [program for _, program in clock.starts] == ["true", "sleep", "true"]
    got = bench.spans(clock.starts, clock.starts[-1][0])
    assert got["sleep"] >= 0.3 and set(got) == {"true", "sleep"}
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_spans_sum_each_program_and_the_last_runs_to_the_end() -> None:
    assert bench.spans([], 5.0) == {}
    assert bench.spans([(1.0, "qemu-img"), (4.0, "virt-fw-vars")], 4.5) == {"qemu-img": 3.0, "virt-fw-vars": 0.5}


def test_the_raw_disk_is_what_the_qcow2_and_the_store_leave() -> None:
    a = bench.Assembly(unpack_s=30.0, total_s=60.0, qcow2_s=8.0, vars_s=2.0, raw_bytes=1 << 30, qcow2_bytes=1 << 28)
    assert a.raw_s == 50.0
    assert bench.report(a, [])[3] == "ratio disk assembly / unpack 2.00"


def test_ratios_need_both_firmware_and_use_the_median_of_each() -> None:
    a = bench.Assembly(10.0, 10.0, 1.0, 1.0, 0, 0)
    sb = [bench.Boot("uefi-secure-boot", w, True) for w in (100.0, 300.0, 200.0)]
    lines = bench.report(a, sb)
    assert lines[-1] == "ratio Secure Boot boot / 150 s aim 1.33"
    assert not any("plain UEFI" in line for line in lines)
    lines = bench.report(a, [*sb, bench.Boot("uefi", 100.0, False, failures=("secure boot: off",))])
    assert "  failed: secure boot: off" in lines
    assert lines[-2:] == ["ratio Secure Boot boot / plain UEFI boot 2.00", "ratio Secure Boot boot / 150 s aim 1.33"]

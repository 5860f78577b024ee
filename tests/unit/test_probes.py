"""The probe parsers against captured and transcribed output (tests/fixtures/probes/).

Each ``<probe>/<case>.txt`` is parsed with ``golden.probes.PARSERS[probe]`` and
compared with ``<case>.json``; see the README there for which cases are real
captures. A new output format is a new fixture pair, not a new test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from golden import probes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "probes"
CASES = sorted(FIXTURES.glob("*/*.txt"))


def test_every_parser_has_fixtures() -> None:
    dirs = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert dirs == set(probes.PARSERS)
    for name in dirs:
        assert list((FIXTURES / name).glob("*.txt")), f"no cases for {name}"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_parser_matches_fixture(case: Path) -> None:
    expected = json.loads(case.with_suffix(".json").read_text())
    parse = probes.PARSERS[case.parent.name]
    text = case.read_text()
    if isinstance(expected, dict) and set(expected) == {"error"}:
        with pytest.raises(probes.ProbeError, match=expected["error"]):
            parse(text)
    else:
        assert probes.to_json(parse(text)) == expected


def test_pin_effective_needs_the_pin_priority() -> None:
    text = (FIXTURES / "apt-cache-policy" / "pin-effective-1001.txt").read_text()
    policy = probes.parse_apt_policy(text)["bash"]
    assert policy.pin_effective(probes.PIN_PRIORITY)
    assert not policy.pin_effective(990)


def test_command_quotes_and_sets_the_c_locale() -> None:
    line = probes.command(*probes.dpkg_query_argv("nvidia-open"))
    assert line.startswith("LC_ALL=C dpkg-query -W -f '${binary:Package}\t")
    assert line.endswith(" nvidia-open")


def test_runtime_config_dispatches_on_the_file_type() -> None:
    toml = (FIXTURES / "containerd-toml" / "dropin-v3.txt").read_text()
    daemon = (FIXTURES / "docker-daemon-json" / "nvidia-runtime.txt").read_text()
    assert probes.parse_runtime_config("/etc/containerd/conf.d/99-nvidia.toml", toml) == ["nvidia"]
    assert probes.parse_runtime_config("/etc/docker/daemon.json", daemon) == ["nvidia"]
    with pytest.raises(probes.ProbeError):
        probes.parse_runtime_config("/etc/docker/daemon.json", toml)

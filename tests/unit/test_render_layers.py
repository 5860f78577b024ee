"""Steps by layer: a script's ``# golden-layer:`` header decides whether the plan runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from golden import ROOT, render
from golden.errors import GoldenError
from golden.kb import load
from golden.plan import make_plan
from golden.profile import load_profile, profile_names
from tests.conftest import WriteProfile
from tests.unit.test_plan_layers import DRIVERLESS
from tests.unit.test_render import load_hcl

#: (script, layer header or None): the shape of scripts/ once every step names its layer.
SCRIPTS = (("10-apt-pins.sh", None), ("30-kernel.sh", "kernel"), ("40-driver.sh", "driver"),
           ("45-reboot.sh", "driver"), ("60-runtime.sh", "runtime"), ("80-fabric-manager.sh", "fabric-manager"),
           ("90-release.sh", None), ("99-cleanup.sh", None))


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    d = tmp_path / "scripts"
    d.mkdir()
    for name, layer in SCRIPTS:
        header = f"# golden-layer: {layer}\n" if layer else ""
        (d / name).write_text(f"#!/usr/bin/env bash\n# {name}: a step.\n{header}#\nset -euo pipefail\n")
    return d


def test_step_layer_reads_the_header(scripts: Path) -> None:
    assert {name: render.step_layer(scripts / name) for name, _ in SCRIPTS} == {
        name: layer or "base" for name, layer in SCRIPTS}


def test_a_layer_line_below_the_header_is_no_header(tmp_path: Path) -> None:
    script = tmp_path / "50-x.sh"
    script.write_text("#!/usr/bin/env bash\nset -eu\n# golden-layer: driver\n")
    assert render.step_layer(script) == "base"


def test_an_unknown_layer_is_an_error(tmp_path: Path) -> None:
    script = tmp_path / "50-x.sh"
    script.write_text("#!/usr/bin/env bash\n# golden-layer: drivers\n")
    with pytest.raises(GoldenError, match="unknown layer 'drivers'"):
        render.step_layer(script)


def test_plan_steps_leave_out_the_steps_of_absent_layers(scripts: Path) -> None:
    def files(layers: tuple[str, ...] | None) -> list[str]:
        before, cleanup = render.plan_steps(scripts, layers)
        return [st.file for st in before + cleanup if st.kind == "script"]

    everything = [name for name, _ in SCRIPTS]
    assert files(None) == everything
    assert files(("kernel", "runtime")) == ["10-apt-pins.sh", "30-kernel.sh", "60-runtime.sh",
                                            "90-release.sh", "99-cleanup.sh"]
    # Without the reboot step, no step waits for a reboot.
    before, _ = render.plan_steps(scripts, ("kernel", "runtime"))
    assert not any(st.pause or st.reboot for st in before)
    assert files(("kernel", "driver", "runtime")) == [n for n in everything if n != "80-fabric-manager.sh"]


def test_a_driverless_plan_renders_without_driver_steps_or_driver_tags(
        write_profile: WriteProfile, profiles_dir: Path, scripts: Path, tmp_path: Path) -> None:
    kb = load()
    write_profile("local-nodriver", DRIVERLESS)
    plan = make_plan(load_profile("local-nodriver", root=profiles_dir, kb=kb), kb)
    out = tmp_path / "out"
    render.render(plan, out, scripts_dir=scripts)
    build = load_hcl((out / "build.pkr.hcl").read_text())["build"][0]
    ran = [Path(body["script"]).name for p in build["provisioner"] for kind, body in p.items()
           if kind == "shell" and "script" in body]
    assert ran == ["10-apt-pins.sh", "30-kernel.sh", "60-runtime.sh", "90-release.sh", "99-cleanup.sh"]
    tags = dict(render._tags(plan))
    assert tags["golden:driver-branch"] == tags["golden:driver-version"] == tags["golden:driver-flavor"] == "none"


@pytest.mark.parametrize("name", [*profile_names(), "local-nodriver"])
def test_the_shipped_scripts_render_when_their_layer_is_planned(
        name: str, write_profile: WriteProfile, profiles_dir: Path, tmp_path: Path) -> None:
    """Whatever layers scripts/ declares, a step is rendered exactly when its layer is planned;
    30-kernel.sh always is (it holds the base image's kernel when none is pinned)."""
    kb = load()
    write_profile("local-nodriver", DRIVERLESS)
    plan = make_plan(load_profile(name, root=profiles_dir, kb=kb), kb)
    out = tmp_path / "out"
    render.render(plan, out)
    text = (out / "build.pkr.hcl").read_text()
    present = {"base", *plan.layer_names}
    assert "scripts/30-kernel.sh" in text
    for script in render.script_files(ROOT / "scripts"):
        assert (f"scripts/{script}" in text) == (render.step_layer(ROOT / "scripts" / script) in present), script

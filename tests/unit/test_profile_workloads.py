"""The profile's ``workloads:`` key: strict like every other key, one error line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from golden.errors import ProfileError
from golden.profile import load_profile
from golden.workloads import MAX_WORKLOADS, Workload
from tests.conftest import WriteProfile, minimal_profile

DIGEST = "sha256:" + "0f" * 32


def error_of(name: str, root: Path) -> str:
    with pytest.raises(ProfileError) as info:
        load_profile(name, root=root)
    line = info.value.line()
    assert "\n" not in line
    return line


def test_workloads_load_with_derived_and_given_names(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("wl", minimal_profile(workloads=[
        {"image": "nvcr.io/nvidia/pytorch:25.04-py3"},
        {"image": f"registry.example.com/team/trainer@{DIGEST}"},
        {"name": "legacy-solver", "cuda": "12.4"},
        {"name": "pinned", "image": "127.0.0.1:5000/cuda:12.9.1", "cuda": "12.9"},
    ]))
    assert load_profile("wl", root=profiles_dir).workloads == (
        Workload("pytorch-25.04-py3", "nvcr.io/nvidia/pytorch:25.04-py3", None),
        Workload("trainer", f"registry.example.com/team/trainer@{DIGEST}", None),
        Workload("legacy-solver", None, "12.4"),
        Workload("pinned", "127.0.0.1:5000/cuda:12.9.1", "12.9"),
    )


def test_no_workloads_is_an_empty_tuple(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("none", minimal_profile())
    write_profile("null", minimal_profile(workloads=None))
    write_profile("empty", minimal_profile(workloads=[]))
    for name in ("none", "null", "empty"):
        assert load_profile(name, root=profiles_dir).workloads == ()


@pytest.mark.parametrize(("workloads", "line"), [
    ("nvcr.io/nvidia/pytorch:25.04-py3", "workloads: a list of workloads, each a mapping with image"),
    ({"image": "x:1"}, "workloads: a list of workloads"),
    (["nvcr.io/nvidia/pytorch:25.04-py3"], "workloads[0]: a mapping (workloads, each a mapping"),
    ([{"image": "a/b:1", "tag": "x"}], "workloads[0].tag: unknown key; allowed keys here: name, image, cuda"),
    ([{}], 'workloads[0]: give image (a registry reference), cuda ("X.Y"), or both'),
    ([{"name": "x"}], 'workloads[0]: give image'),
    ([{"image": "docker://nvcr.io/nvidia/pytorch:25.04-py3"}],
     "workloads[0].image: a registry reference [host[:port]/]path[:tag][@sha256:<64 hex>]"),
    ([{"image": "nvcr.io/NVIDIA/pytorch:1"}], "workloads[0].image: a registry reference"),
    ([{"image": "nvcr.io/nvidia/pytorch:1 "}], "workloads[0].image: a registry reference"),
    ([{"image": "nvcr.io/nvidia/pytorch@sha256:abc"}], "workloads[0].image: a registry reference"),
    ([{"image": 5}], "workloads[0].image: a registry reference"),
    ([{"name": "a", "cuda": "12"}], 'workloads[0].cuda: a CUDA version "X.Y" such as "12.4"; got \'12\''),
    ([{"name": "a", "cuda": 12.4}], "workloads[0].cuda: must be a quoted string"),
    ([{"cuda": "12.4"}], "workloads[0].name: required without an image"),
    ([{"name": "Legacy Solver", "cuda": "12.4"}], "workloads[0].name: a name: lower-case letters"),
    ([{"image": "a/b:1"}, {"image": "c/b:1"}], "workloads[1].name: 'b-1' is also the name of workloads[0]"),
    ([{"name": "x", "cuda": "12.4"}, {"name": "x", "image": "a/b:1"}],
     "workloads[1].name: 'x' is also the name of workloads[0]"),
    ([{"name": f"w{i}", "cuda": "12.4"} for i in range(MAX_WORKLOADS + 1)],
     f"workloads: at most {MAX_WORKLOADS} entries; got {MAX_WORKLOADS + 1}"),
])
def test_malformed_workloads_are_one_line_naming_file_and_key(write_profile: WriteProfile, profiles_dir: Path,
                                                             workloads: object, line: str) -> None:
    write_profile("bad", minimal_profile(workloads=workloads))
    got = error_of("bad", profiles_dir)
    assert got.startswith(f"profiles/bad.yaml: {line}"), got


def test_an_inherited_workload_error_names_the_file_that_set_it(write_profile: WriteProfile,
                                                               profiles_dir: Path) -> None:
    write_profile("base/with-workloads", {"extends": "base/ubuntu-24.04-aws",
                                          "workloads": [{"image": "https://r.example/x:1"}]})
    write_profile("child", minimal_profile(extends="base/with-workloads"))
    assert error_of("child", profiles_dir).startswith(
        "profiles/base/with-workloads.yaml: workloads[0].image: a registry reference")
    # The child's own list replaces the parent's, and its errors name the child.
    write_profile("child", minimal_profile(extends="base/with-workloads", workloads=[{"cuda": "12.4"}]))
    assert error_of("child", profiles_dir).startswith("profiles/child.yaml: workloads[0].name: required")

"""golden/workloads.py: the registry reference, NVIDIA_REQUIRE_CUDA and the facts resolve records.

The NVIDIA_REQUIRE_CUDA fixtures are real values of NVIDIA's CUDA images
(tests/fixtures/require_cuda/README.md says where each was read).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from golden.workloads import (
    Alternative,
    Constraint,
    WorkloadFacts,
    cuda_minor,
    derive_name,
    parse_reference,
    parse_require_cuda,
    split_reference,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "require_cuda"
DIGEST = "sha256:" + "ab" * 32


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text(encoding="utf-8").strip()


# -- references ----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "parts"), [
    ("nvcr.io/nvidia/pytorch:25.04-py3", ("nvcr.io", "nvidia/pytorch", "25.04-py3", None)),
    (f"registry.example.com/team/trainer@{DIGEST}", ("registry.example.com", "team/trainer", None, DIGEST)),
    (f"127.0.0.1:5000/cuda/base:12.9.1@{DIGEST}", ("127.0.0.1:5000", "cuda/base", "12.9.1", DIGEST)),
    ("localhost/app:v1", ("localhost", "app", "v1", None)),
    ("ubuntu:24.04", (None, "ubuntu", "24.04", None)),                  # a Docker Hub short name
    ("nvidia/cuda:13.1.1-base-ubuntu24.04", (None, "nvidia/cuda", "13.1.1-base-ubuntu24.04", None)),
    ("Registry.Example:443/a__b/c-d.e_f:Tag_1", ("Registry.Example:443", "a__b/c-d.e_f", "Tag_1", None)),
])
def test_references_golden_accepts(text: str, parts: tuple[str | None, ...]) -> None:
    assert parse_reference(text) == text
    assert tuple(split_reference(text)) == parts


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty"),
    ("nvcr.io/nvidia/pytorch:25.04-py3 ", "whitespace"),
    (" nvcr.io/nvidia/pytorch:25.04-py3", "whitespace"),
    ("nvcr.io/nvidia/pytorch:25.04\n-py3", "whitespace"),
    ("nvcr.io/nvidia/pytorch:25.04\tpy3", "whitespace"),
    ("nvcr.io/nvidia/pytorch:25.04\x1b[31m", "control"),
    ("docker://nvcr.io/nvidia/pytorch:25.04-py3", "scheme"),
    ("https://nvcr.io/nvidia/pytorch:25.04-py3", "scheme"),
    ("nvcr.io/NVIDIA/pytorch:25.04-py3", "lower-case"),               # upper-case repository path
    ("nvcr.io/nvidia/PyTorch:25.04-py3", "lower-case"),
    ("nvcr.io/nvidia/pytorch", "tag or a digest"),                      # no implicit :latest
    ("nvcr.io/nvidia/pytorch@sha256:abc", "64 lower-case hex"),
    (f"nvcr.io/nvidia/pytorch@sha256:{'AB' * 32}", "64 lower-case hex"),
    (f"nvcr.io/nvidia/pytorch@sha512:{'ab' * 64}", "64 lower-case hex"),
    (f"nvcr.io/nvidia/pytorch@{DIGEST}@{DIGEST}", "64 lower-case hex"),
    ("nvcr.io/nvidia/pytorch:-bad", "a tag is"),
    ("nvcr.io/nvidia/pytorch:" + "t" * 129, "a tag is"),
    ("nvcr.io/nvidia/pytorch:25.04;rm -rf /", "whitespace"),
    ("nvcr.io/nvidia/pytorch:25.04;rm", "a tag is"),
    ("nvcr.io/nvidia/pytorch:$(id)", "a tag is"),
    ("nvcr.io/../pytorch:1", "path part"),
    ("nvcr.io//pytorch:1", "path part"),
    ("nvcr.io/nvidia/pytorch/:1", "path part"),
    ("nvcr.io/-nvidia/pytorch:1", "path part"),
    ("nvcr.io:99999/nvidia/pytorch:1", "port"),
    ("nvcr.io:0/nvidia/pytorch:1", "port"),
    ("-bad.example/x:1", "registry host"),
    ("user:pw@nvcr.io/nvidia/pytorch:1", "64 lower-case hex"),
    ("nvcr.io/" + "a/" * 130 + "b:1", "longer than 255"),
])
def test_hostile_references_are_refused_with_what_is_allowed(text: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_reference(text)
    message = str(info.value)
    assert why in message, message
    assert message.startswith("a registry reference [host[:port]/]path[:tag][@sha256:<64 hex>]")
    assert "\n" not in message


def test_a_reference_that_is_not_text_is_refused() -> None:
    with pytest.raises(ValueError, match="empty or non-text"):
        split_reference(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("image", "name"), [
    ("nvcr.io/nvidia/pytorch:25.04-py3", "pytorch-25.04-py3"),
    (f"registry.example.com/team/trainer@{DIGEST}", "trainer"),
    (f"r.example/a/b:V1.0-RC@{DIGEST}", "b-v1.0-rc"),
    ("r.example/" + "x" * 60 + ":" + "y" * 20, "x" * 60 + "-yy"),        # cut at 63
])
def test_derived_names(image: str, name: str) -> None:
    assert derive_name(image) == name


@pytest.mark.parametrize(("text", "minor"), [("12.9.1", "12.9"), ("13.0", "13.0"), ("10.1.243", "10.1"),
                                             ("12", None), ("", None), (None, None), ("12.x", None)])
def test_cuda_minor(text: str | None, minor: str | None) -> None:
    assert cuda_minor(text) == minor


# -- NVIDIA_REQUIRE_CUDA -------------------------------------------------------------

BRANDS_12 = ("unknown", "grid", "tesla", "nvidia", "quadro", "quadrortx", "nvidiartx", "vapps", "vpc", "vcs",
             "vws", "cloudgaming")


@pytest.mark.parametrize(("name", "cuda", "branches", "brands"), [
    ("cuda-12.9.1-ubi9-base", "12.9", ["535", "550", "560", "565", "570"], BRANDS_12),
    ("cuda-13.1.1-ubuntu2404-base", "13.1", ["535", "550", "570", "575", "580"], BRANDS_12),
    ("cuda-12.2.2-ubuntu2204-base", "12.2", ["470", "525"],
     ("tesla", "unknown", "nvidia", "nvidiartx", "geforce", "geforcertx", "quadro", "quadrortx", "titan",
      "titanrtx")),
    ("cuda-10.1.243", "10.1", ["384", "396", "410"], ("tesla",)),
])
def test_real_require_cuda_strings_parse(name: str, cuda: str, branches: list[str], brands: tuple[str, ...]) -> None:
    req = parse_require_cuda(fixture(name))
    assert req.min_cuda == cuda
    assert req.branches() == branches
    assert req.terms[0] == (Constraint("cuda", ">=", cuda),)
    alternatives = req.alternatives
    assert len(alternatives) == len(branches) * len(brands) == len(req.terms) - 1
    for alt in alternatives:
        assert alt.brand in brands and alt.driver_low in branches
        assert alt.driver_high == str(int(str(alt.driver_low)) + 1)      # one branch: >=B, <B+1
    assert {a.brand for a in alternatives} == set(brands)
    assert req.summary() == f"cuda>={cuda}, or drivers of " + ", ".join(f"R{b}" for b in branches)


def test_require_cuda_terms_or_and_constraints_and() -> None:
    req = parse_require_cuda("cuda>=12.9 brand=tesla,driver>=535,driver<536")
    assert req.terms == ((Constraint("cuda", ">=", "12.9"),),
                         (Constraint("brand", "=", "tesla"), Constraint("driver", ">=", "535"),
                          Constraint("driver", "<", "536")))
    assert req.alternatives == (Alternative("tesla", "535", "536"),)
    assert str(req.terms[1][1]) == "driver>=535"


def test_require_cuda_skips_what_the_toolkit_skips() -> None:
    # Properties the toolkit does not know are skipped; empty factors and terms vanish.
    req = parse_require_cuda("  cuda>=13.0,,  foo=bar  arch>=9.0 ")
    assert req.terms == ((Constraint("cuda", ">=", "13.0"),), (Constraint("arch", ">=", "9.0"),))
    assert parse_require_cuda("").terms == ()
    assert parse_require_cuda("brand=tesla,driver>=470").min_cuda is None
    # A term of cuda with something else is not the image's plain minimum.
    assert parse_require_cuda("brand=tesla,cuda>=13.0").min_cuda is None


@pytest.mark.parametrize(("text", "why"), [
    ("cuda12.9", "PROPERTY OPERATOR VALUE"),
    ("cuda>=twelve", "takes a version"),
    ("driver>=535.x", "takes a version"),
    ("cuda>=12.9\nerror: forged", "one line"),
    ("cuda>=" + "1" * 20000, "one line"),
])
def test_malformed_require_cuda_is_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_require_cuda(text)


# -- facts ---------------------------------------------------------------------------

def facts(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {"name": "pytorch", "image": "nvcr.io/nvidia/pytorch:25.04-py3", "digest": DIGEST,
                               "arch": "amd64", "cuda_version": "12.9.1",
                               "require_cuda": fixture("cuda-12.9.1-ubi9-base"), "compat": "yes"}
    data.update(changes)
    return data


def test_facts_round_trip_through_json() -> None:
    f = WorkloadFacts.from_json(facts())
    assert WorkloadFacts.from_json(f.to_json()) == f
    assert f.require is not None and f.require.min_cuda == "12.9"
    bare = WorkloadFacts.from_json(facts(cuda_version=None, require_cuda=None, compat="unknown"))
    assert bare.require is None and bare.to_json()["cuda_version"] is None


@pytest.mark.parametrize(("changes", "key"), [
    ({"digest": "sha256:abc"}, "digest"),
    ({"compat": "maybe"}, "compat"),
    ({"image": "docker://x:1"}, "image"),
    ({"name": "Bad Name"}, "name"),
    ({"cuda_version": "twelve"}, "cuda_version"),
    ({"require_cuda": "cuda12"}, "require_cuda"),
    ({"extra": 1}, "extra"),
    ({"arch": 5}, "arch"),
])
def test_malformed_facts_name_their_key(changes: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError) as info:
        WorkloadFacts.from_json(facts(**changes))
    assert str(info.value).startswith(f"{key}: "), info.value


def test_facts_refuse_a_bad_compat_value_when_built_directly() -> None:
    with pytest.raises(ValueError, match=re.escape("compat: one of yes | no | unknown")):
        WorkloadFacts("x", "a/b:1", DIGEST, "amd64", None, None, "perhaps")
    with pytest.raises(ValueError, match="a mapping"):
        WorkloadFacts.from_json([])  # type: ignore[arg-type]

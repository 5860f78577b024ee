"""The scripts' contract (golden/contract.py) against the scripts and the plans.

The table is the one owner of the GOLDEN_* variables: these tests read the
scripts (which names they read, with which validator, in which layer) and run
the bash validators for real, so the Python and bash sides cannot drift apart.
"""

from __future__ import annotations

import re
import subprocess
from enum import StrEnum
from pathlib import Path

import pytest

from golden import contract
from golden.contract import BY_NAME, VARIABLES, Layer
from golden.errors import GoldenError
from golden.kb import load
from golden.plan import make_plan
from golden.profile import PROFILES, Arch, DriverSource, Flavor, OsName, Runtime, load_profile

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
#: Every file of scripts/ that reads the environment: the steps, lib.sh and its
#: parts, the boot check and release.py.
SOURCES = sorted([*SCRIPTS.glob("*.sh"), *SCRIPTS.glob("lib/*.sh"), *SCRIPTS.glob("*.py")])
STEP = re.compile(r"^(?P<order>[0-9]{2})-[A-Za-z0-9][A-Za-z0-9._-]*\.sh$")
STEPS = sorted((p for p in SCRIPTS.iterdir() if STEP.match(p.name)), key=lambda p: p.name)
NAME = re.compile(r"\bGOLDEN_[A-Z0-9_]*[A-Z0-9]\b")
#: require_env VAR is_x / check_env VAR is_x / env_words ARRAY VAR is_x
READ = re.compile(r"^(?P<indent>\s*)(?:(?P<how>require_env|check_env) |env_words \w+ )"
                  r"(?P<var>GOLDEN_\w+) (?P<check>is_\w+)\s*$", re.M)


def code(path: Path) -> str:
    """The file without its comment lines (headers name variables in prose)."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def names_read(path: Path) -> set[str]:
    """The GOLDEN_* names a script reads. 20-repos builds its repositories'
    names from a prefix (``[cuda]=GOLDEN_CUDA_REPO`` and ``"${prefix}_URL"``):
    those are expanded, and the prefixes themselves are no variables."""
    text = code(path)
    prefixes = set(re.findall(r"\]=(GOLDEN_[A-Z0-9_]+)", text))
    suffixes = set(re.findall(r"\$\{prefix\}(_[A-Z0-9_]+)", text))
    return (set(NAME.findall(text)) - prefixes) | {p + s for p in prefixes for s in suffixes}


def plan_env(profile: str) -> dict[str, str]:
    return make_plan(load_profile(profile), load()).env()


PROFILE_NAMES = sorted(p.stem for p in PROFILES.glob("*.yaml"))


# ---------------------------------------------------------------- the table against the scripts


def test_the_scripts_read_exactly_the_tables_variables() -> None:
    read: set[str] = set()
    for path in SOURCES:
        read |= names_read(path)
    assert read == set(BY_NAME), (
        f"read by no entry of golden/contract.py: {sorted(read - set(BY_NAME))}; "
        f"in the table but read by no script: {sorted(set(BY_NAME) - read)}")


def test_names_in_script_headers_are_the_tables() -> None:
    """The prose too: a header that names a variable names one that exists."""
    prefixes = {"GOLDEN_CUDA_REPO", "GOLDEN_CTK_REPO"}
    for path in SOURCES:
        unknown = set(NAME.findall(path.read_text())) - set(BY_NAME) - prefixes
        assert not unknown, f"{path.name} names {sorted(unknown)}"


def test_the_scripts_check_each_variable_with_the_tables_validator() -> None:
    seen = 0
    for path in SOURCES:
        for m in READ.finditer(path.read_text()):
            var = BY_NAME[m["var"]]
            assert m["check"] == var.form.check, f"{path.name}: {m['var']} is checked with {m['check']}"
            if m["how"] == "require_env":
                assert not var.empty, f"{path.name} requires {m['var']}, which the table lets be empty"
            seen += 1
    assert seen > 40


def test_words_and_single_values_are_read_as_the_table_says() -> None:
    for path in SOURCES:
        text = path.read_text()
        for var in re.findall(r"^\s*env_words \w+ (GOLDEN_\w+) ", text, re.M):
            assert BY_NAME[var].words, f"{path.name} splits {var} into words"
        for m in READ.finditer(text):
            if m["how"]:
                assert not BY_NAME[m["var"]].words, f"{path.name} reads the word list {m['var']} as one value"


def layer_of(step: Path) -> str:
    found = re.findall(r"^# golden-layer: (\S+)$", step.read_text(), re.M)
    assert len(found) == 1, f"{step.name} needs exactly one '# golden-layer: <layer>' header line"
    assert found[0] in {x.value for x in Layer}, f"{step.name}: unknown layer {found[0]}"
    return str(found[0])


def test_steps_run_layer_by_layer() -> None:
    """Base steps first and last; each other layer's steps together, in the
    contract's layer order, and every layer has one; cleanup runs last."""
    order = list(Layer)
    layers = [Layer(layer_of(s)) for s in STEPS]
    numbers = [int(s.name[:2]) for s in STEPS]
    assert numbers == sorted(set(numbers)), "two steps share a number"
    inner = [x for x in layers if x is not Layer.BASE]
    assert inner == sorted(inner, key=order.index), [s.name for s in STEPS]
    assert set(inner) == set(order) - {Layer.BASE}
    first, last = layers.index(inner[0]), len(layers) - 1 - layers[::-1].index(inner[-1])
    assert Layer.BASE not in layers[first:last + 1], "a base step between two layers"
    assert STEPS[-1].name.endswith("-cleanup.sh")


def test_base_steps_read_other_layers_only_when_present() -> None:
    """A base step runs on every image: another layer's variable is never
    required unconditionally (a driverless image has none)."""
    for step in [*(s for s in STEPS if layer_of(s) == "base"), SCRIPTS / "golden-gpu-check.sh"]:
        for m in READ.finditer(step.read_text()):
            if m["how"] == "require_env" and not m["indent"]:
                assert BY_NAME[m["var"]].layer is Layer.BASE, f"{step.name} requires {m['var']}"


# ---------------------------------------------------------------- the table against the plans


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_every_profiles_env_passes_the_contract(profile: str) -> None:
    env = plan_env(profile)
    assert contract.check(env) is env
    # A shipped profile's env is the whole table but the runtime part, and but the driver's
    # variables on a driverless image (the driverless layer has none of its own).
    driverless = "GOLDEN_DRIVER_SOURCE" not in env
    no_data_disks = "GOLDEN_DATA_DISKS_MOUNT" not in env    # data disks are the profile's choice
    rootfs = "GOLDEN_BOOT_CHAIN_PACKAGES" not in env        # a boot chain only on a disk image
    no_apptainer = "GOLDEN_APPTAINER_VERSION" not in env     # Apptainer is the profile's choice
    assert set(env) == {v.name for v in VARIABLES if not v.runtime
                        and not (driverless and v.layer is Layer.DRIVER)
                        and not (no_data_disks and v.layer is Layer.DATA_DISKS)
                        and not (no_apptainer and v.layer is Layer.APPTAINER)
                        and not (rootfs and v.layer is Layer.BOOT_CHAIN)}
    assert driverless == (make_plan(load_profile(profile), load()).layer("driverless") is not None)


def test_a_profile_without_a_driver_passes_without_driver_variables() -> None:
    env = {k: v for k, v in plan_env("local-debian12-r535").items()
           if BY_NAME[k].layer is not Layer.DRIVER}
    contract.check(env)


@pytest.mark.parametrize("change, message", [
    ({"GOLDEN_SHINY": "1"}, "GOLDEN_SHINY is not in the scripts' contract"),
    ({"GOLDEN_DRIVER_FLAVOR": "Open"}, "GOLDEN_DRIVER_FLAVOR has an invalid value 'Open' (flavor expected)"),
    ({"GOLDEN_HOLDS": "nvidia-open $(id)"}, "GOLDEN_HOLDS has an invalid value"),
    ({"GOLDEN_PINS": "a=1\nb=2"}, "GOLDEN_PINS has an invalid value"),
    ({"GOLDEN_MODULE_NAME": ""}, "GOLDEN_MODULE_NAME has an invalid value ''"),
    ({"GOLDEN_BUILD_ID": '"}, "x'}, "GOLDEN_BUILD_ID has an invalid value"),
])
def test_check_names_the_variable(change: dict[str, str], message: str) -> None:
    env = {**plan_env("b200-r595"), **change}
    with pytest.raises(GoldenError) as err:
        contract.check(env)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("drop, message", [
    ("GOLDEN_OS", "GOLDEN_OS is missing: the base layer's variables come all or none"),
    ("GOLDEN_MODULE_NAME", "GOLDEN_MODULE_NAME is missing: the driver layer's"),
])
def test_check_wants_a_layer_whole(drop: str, message: str) -> None:
    env = plan_env("b200-r595")
    del env[drop]
    with pytest.raises(GoldenError, match=re.escape(message)):
        contract.check(env)


# ---------------------------------------------------------------- the bash validators, run for real

HOSTILE = ["", " ", "a b", "a'b", 'a"b', "a\\b", "$(id)", "`id`", "a;b", "a\nb", "a\tb", "-", "x" * 3,
           "ä", "/", "..", "1:", "=", "src:", "OPEN", "Docker", "debian-14", "ubuntu-24.10", "amd64 ",
           " open", "nvidia\n", "https://x.example/a b", "file:///tmp/k.asc", "595.*", "src:x=595.*"]


def enum_values() -> list[str]:
    values = [e.value for enum in (OsName, Arch, Flavor, DriverSource, Runtime) for e in enum]
    return values + [v.upper() for v in values] + [v + "x" for v in values] + ["x" + v for v in values]


def samples() -> list[str]:
    """Values from every shipped plan (single words), plus hostile ones."""
    out: set[str] = set(HOSTILE) | set(enum_values()) | {"true", "false", "True", "1"}
    for profile in PROFILE_NAMES:
        for value in plan_env(profile).values():
            out |= {value, *value.split()}
    return sorted(out)


def bash_verdicts(pairs: list[tuple[str, str]]) -> list[bool]:
    """Run ``VALIDATOR VALUE`` for each pair in one bash, from scripts/lib/validate.sh."""
    data = "".join(f"{check}\0{value}\0" for check, value in pairs)
    program = (f'source {SCRIPTS / "lib" / "log.sh"}; source {SCRIPTS / "lib" / "validate.sh"}\n'
               'while IFS= read -r -d "" check && IFS= read -r -d "" value; do\n'
               '    if "$check" "$value"; then echo 1; else echo 0; fi\n'
               'done\n')
    result = subprocess.run(["bash", "-c", program], input=data, capture_output=True, text=True,
                            check=True, timeout=120)
    return [line == "1" for line in result.stdout.splitlines()]


def test_bash_validators_agree_with_the_tables_forms() -> None:
    """Each form's is_* accepts exactly what the Python form accepts: for the
    enums that is exactly the StrEnum's values, for the patterns every plan's
    values and none of the hostile ones."""
    forms = {v.form for v in VARIABLES if v.form.check}
    values = samples()
    pairs = [(form.check, value) for form in sorted(forms, key=lambda f: f.check) for value in values]
    got = bash_verdicts(pairs)
    assert len(got) == len(pairs)
    wrong = [(check, value, bash) for (check, value), bash in zip(pairs, got, strict=True)
             if bash != next(f for f in forms if f.check == check).accepts(value)]
    assert not wrong, f"(validator, value, bash's verdict) where bash and Python differ: {wrong[:10]}"


@pytest.mark.parametrize("check, enum", [
    ("is_os_id", OsName), ("is_arch", Arch), ("is_flavor", Flavor),
    ("is_driver_source", DriverSource), ("is_runtime", Runtime),
])
def test_enum_validators_accept_exactly_the_enum(check: str, enum: type[StrEnum]) -> None:
    values = enum_values()
    accepted = {v for v, ok in zip(values, bash_verdicts([(check, v) for v in values]), strict=True) if ok}
    assert accepted == {e.value for e in enum}

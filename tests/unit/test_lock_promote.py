"""promote and revoke: channels, refusals, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from golden import lockfile, promote
from golden.errors import GoldenError

NAME = "h100-r595"


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    path = tmp_path / "images.lock"

    def change(lock: lockfile.Lock) -> None:
        # Oldest first; add_build puts each newest first.
        for build_id, status in (("b1", "passed"), ("b2", "passed"), ("b3", "failed")):
            lockfile.add_build(lock, NAME, {"id": build_id, "status": status}, inputs_sha256="x")

    lockfile.update(change, path)
    return path


def _channels(path: Path) -> dict[str, str]:
    return dict(lockfile.load(path)["profiles"][NAME]["channels"])


def test_promote_defaults_to_newest_passed(lock_path: Path) -> None:
    assert promote.promote(NAME, "prod", lock_path=lock_path) == f"{NAME}: prod -> b2"
    assert _channels(lock_path) == {"prod": "b2"}
    promote.promote(NAME, "canary", "b1", lock_path=lock_path)
    assert _channels(lock_path) == {"canary": "b1", "prod": "b2"}


def test_promote_refuses_failed_and_revoked(lock_path: Path) -> None:
    with pytest.raises(GoldenError, match="did not pass verification"):
        promote.promote(NAME, "prod", "b3", lock_path=lock_path)
    promote.revoke(NAME, "b2", "bad firmware", lock_path=lock_path)
    with pytest.raises(GoldenError, match="was revoked: bad firmware"):
        promote.promote(NAME, "prod", "b2", lock_path=lock_path)
    # The default skips the revoked build.
    assert promote.promote(NAME, "prod", lock_path=lock_path).endswith("-> b1")
    with pytest.raises(GoldenError, match="no build nope"):
        promote.promote(NAME, "prod", "nope", lock_path=lock_path)


def test_revoke_refused_while_a_channel_points_at_it(lock_path: Path) -> None:
    promote.promote(NAME, "prod", "b2", lock_path=lock_path)
    before = lock_path.read_text()
    with pytest.raises(GoldenError, match="channel prod points at b2"):
        promote.revoke(NAME, "b2", "bad", lock_path=lock_path)
    assert lock_path.read_text() == before
    promote.promote(NAME, "prod", "b1", lock_path=lock_path)
    promote.revoke(NAME, "b2", "bad", lock_path=lock_path)
    b2 = next(b for b in lockfile.load(lock_path)["profiles"][NAME]["builds"] if b["id"] == "b2")
    assert (b2["status"], b2["revoked"], b2["revoked_reason"]) == ("revoked", True, "bad")


@pytest.mark.parametrize("channel", ["Prod", "1prod", "", "a" * 32, "prod;rm", "pr od"])
def test_bad_channel_names(lock_path: Path, channel: str) -> None:
    with pytest.raises(GoldenError, match="channel"):
        promote.promote(NAME, channel, lock_path=lock_path)


@pytest.mark.parametrize("reason", ["two\nlines", "bell\x07", "", "   "])
def test_bad_reasons(lock_path: Path, reason: str) -> None:
    with pytest.raises(GoldenError, match="one line"):
        promote.revoke(NAME, "b1", reason, lock_path=lock_path)


def test_a_newline_in_a_build_id_stays_on_one_line(lock_path: Path) -> None:
    with pytest.raises(GoldenError) as info:
        promote.promote("h100-r595", "prod", "x\nerror: forged", lock_path=lock_path)
    assert "\n" not in info.value.line() and "x\\nerror: forged" in info.value.line()


def test_promote_keeps_the_lock_mode(lock_path: Path) -> None:
    lock_path.chmod(0o604)
    promote.promote("h100-r595", "prod", lock_path=lock_path)
    assert lock_path.stat().st_mode & 0o777 == 0o604

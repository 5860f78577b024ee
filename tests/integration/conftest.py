"""The session's one real bake, shared by the bake and boot tests.

The real bake of ``local-debian12-r535`` (Debian's archive, DKMS, a QEMU boot)
takes minutes, so it runs once per test session (with two workloads declared in
the workspace's copy of the profile, so the bake probes their CUDA runtimes
against the image's real libcuda): ``test_bake.py`` checks what it
produced and ``test_boottest.py`` boots its artifact again with planted faults.
"""

from __future__ import annotations

import pytest

from tests.integration.workspace import R535, WORKLOADS, Baked, Workspace, assert_nothing_left, need_root_and_bake_tools


@pytest.fixture(scope="session")
def r535_bake(tmp_path_factory: pytest.TempPathFactory) -> Baked:
    """``invoke build --profile local-debian12-r535``, for real, once per session.

    A failure is raised again in every test that asks for the bake.
    """
    need_root_and_bake_tools()
    ws = Workspace(tmp_path_factory.mktemp("r535"))
    ws.add_workloads(R535, WORKLOADS)
    summary = ws.bake(R535)
    assert_nothing_left(ws)
    return Baked(ws, summary)

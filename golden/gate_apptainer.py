"""The gate's rules of Apptainer (``container.apptainer``): where golden can install it at all.

golden/data/packages.yaml ``apptainer`` says, per OS, where the package comes from and which
releases golden can pin, or why it cannot be installed there (Debian 12: the package needs a
newer glibc than bookworm has). Without a release asked for there is nothing to check; with
one, an OS the data rules out or a release it does not know is refused here, before anything
is rendered (golden/layers.py leaves the layer out for both).

    >>> from golden.kb import load
    >>> from golden.profile import load_profile
    >>> [f.rule for f in install(load_profile("local-debian13-driverless"), load())]
    []
"""

from __future__ import annotations

from collections.abc import Iterator

from golden.gate_rules import Finding, finding
from golden.kb import KnowledgeBase
from golden.profile import Profile


def install(profile: Profile, kb: KnowledgeBase) -> Iterator[Finding]:
    """Base rule: Apptainer is asked for on an OS, or at a release, golden cannot install."""
    want = profile.container.apptainer
    if want is None:
        return
    facts = kb.packages.get("apptainer", {})
    spec = facts.get(profile.os.value)
    where = "golden/data/packages.yaml apptainer"
    if spec is None or not spec.get("installable", True):
        reason = spec.get("reason", "no package source is known") if spec else "no package source is known"
        can = sorted(k for k, v in facts.items() if v.get("installable", True))
        yield finding("apptainer-install-unsupported",
                      f"container.apptainer {want} on {profile.os.value}: {reason} [{where}; "
                      f"{spec.get('source', '?') if spec else '?'}]; Apptainer installs on "
                      f"{', '.join(can) or 'no OS golden knows'}; set container.apptainer: null")
        return
    known = sorted(spec.get("versions", {}))
    if want not in known:
        yield finding("apptainer-version-unknown",
                      f"container.apptainer {want} on {profile.os.value}: {spec['package']} is packaged at "
                      f"{', '.join(known) or 'no release'} ({spec.get('suite', '?')}, checked "
                      f"{spec.get('checked', '?')}) [{where}; {spec.get('source', '?')}]")

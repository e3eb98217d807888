"""The public API does not change silently (docs/api.md, CHANGELOG.md "Versioning policy").

``tests/data/public_api.json`` records every public name with its signature (and, for classes, their
own public methods). A recorded name that disappears, or whose signature changes, fails here unless it
was deprecated (``patchvae._deprecation``) and its removal version has come. A new public name fails
until it is recorded. Regenerate after a deliberate, documented change:
``python tests/data/make_public_api.py`` (also rewrites the index of docs/api.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))
from make_public_api import API_DOC, index_markdown, snapshot  # noqa: E402

from patchvae._deprecation import DEPRECATED, deprecated  # noqa: E402
from patchvae.version import __version__  # noqa: E402

RECORDED = json.loads((Path(__file__).parent / "data" / "public_api.json").read_text(encoding="utf-8"))
REGENERATE = "regenerate with `python tests/data/make_public_api.py` and write the change in CHANGELOG.md"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def _removal_allowed(qualified: str) -> bool:
    """A deprecated name may go once the version reaches its ``removed_in``."""
    notices = [n for key, n in DEPRECATED.items() if qualified.endswith("." + n.name) or key == qualified]
    return any(_version(__version__) >= _version(n.removed_in) for n in notices)


def _diff(recorded: dict, current: dict) -> tuple[list[str], list[str], list[str]]:
    removed, changed, added = [], [], []
    for name, info in recorded.items():
        now = current.get(name)
        if now is None:
            removed.append(name)
            continue
        if info.get("signature") != now.get("signature") or info["kind"] != now["kind"]:
            changed.append(f"{name}: {info.get('signature')} -> {now.get('signature')}")
        for method, sig in (info.get("methods") or {}).items():
            new = (now.get("methods") or {}).get(method)
            if new is None:
                removed.append(f"{name}.{method}")
            elif new != sig:
                changed.append(f"{name}.{method}: {sig} -> {new}")
    for name, info in current.items():
        if name not in recorded:
            added.append(name)
            continue
        added += [f"{name}.{m}" for m in (info.get("methods") or {}) if m not in (recorded[name].get("methods") or {})]
    return removed, changed, added


def test_no_public_name_disappears_or_changes_without_a_deprecation():
    removed, changed, _ = _diff(RECORDED, snapshot())
    removed = [n for n in removed if not _removal_allowed(n)]
    assert not removed, f"public names removed without a deprecation: {removed}. Deprecate them first, or {REGENERATE}"
    assert not changed, f"public signatures changed: {changed}. Keep the old signature working (deprecate), or {REGENERATE}"


def test_new_public_names_are_recorded_and_documented():
    _, _, added = _diff(RECORDED, snapshot())
    assert not added, f"new public names not recorded: {added}; {REGENERATE}"


def test_docs_api_index_lists_every_public_name():
    doc = API_DOC.read_text(encoding="utf-8")
    assert index_markdown(snapshot()) in doc, f"the index of docs/api.md is stale; {REGENERATE}"


def test_the_check_catches_removals_and_signature_changes():
    """The diff itself: a removed name, a changed signature and a new method are each reported."""
    recorded = {"m.f": {"kind": "function", "signature": "(a)"}, "m.C": {"kind": "class", "signature": "()",
                "methods": {"run": "(self)"}}, "m.g": {"kind": "function", "signature": "(x)"}}
    current = {"m.f": {"kind": "function", "signature": "(a, b)"}, "m.C": {"kind": "class", "signature": "()",
               "methods": {"go": "(self)"}}}
    removed, changed, added = _diff(recorded, current)
    assert removed == ["m.C.run", "m.g"] and changed == ["m.f: (a) -> (a, b)"] and added == ["m.C.go"]


def test_deprecated_names_warn_once_per_call_and_name_their_replacement():
    @deprecated("0.1.0", "0.2.0", "new_function")
    def old_function(x: int) -> int:
        """Old."""
        return x + 1

    with pytest.warns(FutureWarning, match=r"old_function is deprecated since patchvae 0\.1\.0 and will be removed in 0\.2\.0; use new_function instead"):
        assert old_function(1) == 2
    assert old_function.__deprecated__.replacement == "new_function"
    assert "deprecated:: 0.1.0" in old_function.__doc__
    assert any(key.endswith("old_function") for key in DEPRECATED)

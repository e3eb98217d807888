"""mkdocs hooks (``hooks:`` in mkdocs.yml): pages generated at build time, so none of them can drift.

* ``index.md``: the repository's README.md, verbatim except for its links (``docs/x.md`` → ``x.md``).
* ``weights.md``: weights/README.md (the packaged weights), links rewritten the same way.
* ``zoo.md``: the model zoo table, rendered from the registry by ``docs/gen_zoo.py``.
"""

from __future__ import annotations

import importlib.util
import posixpath
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # document this checkout's registry, not another installed copy
    sys.path.insert(0, str(ROOT))

#: repository files that become site pages: repo path -> page path (relative to docs/)
INCLUDED = {"README.md": "index.md", "weights/README.md": "weights.md"}

_LINK = re.compile(r"(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)


def rewrite_links(markdown: str, source: str) -> str:
    """Links of the repository file ``source`` (repo-relative), rewritten for a page at the docs root.

    A relative link to ``docs/...`` loses its ``docs/`` prefix, a link to another file of ``INCLUDED``
    points at its page; anything else is kept, so ``mkdocs build --strict`` reports it if it is broken.
    Fenced code blocks are left alone.
    """

    def fix(match: re.Match[str]) -> str:
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith(("#", "/")):
            return match.group(0)
        path, hash_, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), path)) if path else source
        if resolved in INCLUDED:
            new = INCLUDED[resolved]
        elif resolved == "docs" or resolved.startswith("docs/"):
            new = resolved[len("docs/") :] or "./"
        else:
            return match.group(0)
        return f"{match.group(1)}{new}{hash_}{anchor}{match.group(3)}"

    pieces = _FENCE.split(markdown)
    out, in_fence, fence = [], False, ""
    # split() keeps the captured fence markers: text, marker, text, marker, ...
    for i, piece in enumerate(pieces):
        if i % 2 == 1:  # a fence marker
            if not in_fence:
                in_fence, fence = True, piece
            elif piece == fence:
                in_fence = False
            out.append(piece)
        else:
            out.append(piece if in_fence else _LINK.sub(fix, piece))
    return "".join(out)


def _gen_zoo():
    spec = importlib.util.spec_from_file_location("patchvae_docs_gen_zoo", Path(__file__).with_name("gen_zoo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_files(files, config):
    from mkdocs.structure.files import File

    for source, page in INCLUDED.items():
        text = (ROOT / source).read_text(encoding="utf-8")
        files.append(File.generated(config, page, content=rewrite_links(text, source)))
    files.append(File.generated(config, "zoo.md", content=_gen_zoo().render_zoo()))
    return files

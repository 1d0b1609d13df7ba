"""mkdocs hooks of cosim's documentation site: add the pages `tools/docs_gen.py` generates to the
build (never written into docs/), put one nav entry per scheme under Schemes, and fill the
`<!-- gen: NAME -->` and `<!-- docstring: dotted.path -->` markers of the hand-written pages.

A marker that names nothing that exists fails the build, so a renamed function shows up as a
broken page at the next `make docs`, not as a stale formula.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docs_gen  # noqa: E402

_MARKER = re.compile(r"<!--\s*(gen|docstring):\s*([\w.]+)\s*-->")


def on_config(config):
    """Expand the `Schemes` nav entry (schemes/index.md) into the index and one page per scheme."""
    names = docs_gen.scheme_names()

    def expand(items):
        out = []
        for item in items:
            if isinstance(item, dict):
                (title, value), = item.items()
                if value == "schemes/index.md":
                    value = [{"Overview": "schemes/index.md"}] + [{n: f"schemes/{n}.md"} for n in names]
                elif isinstance(value, list):
                    value = expand(value)
                out.append({title: value})
            else:
                out.append(item)
        return out

    config["nav"] = expand(config["nav"])
    return config


def on_files(files, config):
    for rel, content in docs_gen.pages().items():
        existing = files.get_file_from_path(rel)
        if existing is not None:   # a generated page wins over a stale copy in docs/
            files.remove(existing)
        files.append(File.generated(config, rel, content=content))
    return files


def on_page_markdown(markdown, page, config, files):
    snippets = None

    def fill(match):
        nonlocal snippets
        what, name = match.groups()
        if what == "docstring":
            return docs_gen.docstring_of(name)
        snippets = snippets or docs_gen.concepts_snippets()
        if name not in snippets:
            raise KeyError(f"{page.file.src_uri}: no generated snippet {name!r}; known: {', '.join(snippets)}")
        return snippets[name]

    return _MARKER.sub(fill, markdown)

"""MkDocs hook: the "Results tables" page lists the pages ``docs/gen_results.py`` wrote into
``docs/results/`` (they are not in the navigation; nothing is listed when there are none)."""

from __future__ import annotations

import posixpath

PAGE = "guide/results.md"
MARKER = "<!-- results: the list of docs/results/*.md is put here by docs/hooks/results.py -->"


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != PAGE:
        return markdown
    found = sorted(f.src_uri for f in files.documentation_pages() if f.src_uri.startswith("results/"))
    here = posixpath.dirname(PAGE)
    items = [
        f"- [{posixpath.splitext(posixpath.basename(u))[0]}]({posixpath.relpath(u, here)})" for u in found
    ]
    return markdown.replace(MARKER, "\n".join(items) or "*(none yet)*")

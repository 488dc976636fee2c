"""MkDocs hook: the lab's docstrings, written for doctest and plain reading, rendered as Markdown.

Two rewrites, before any other Markdown processing of a page or of a docstring section:

- a doctest block (a line starting with ``>>>`` and the lines after it up to a blank line) becomes a
  fenced ``pycon`` code block, so its output is shown as code and never read as Markdown (where
  ``[0][1]`` would be a reference link);
- Sphinx roles (``:class:`~gan_lab.losses.Hinge```, ``:func:``, ...) become plain code spans.

mkdocstrings renders docstrings with the site's Markdown extensions, so this reaches them too.
Listed under ``hooks:`` in mkdocs.yml; nothing here reads the network.
"""

from __future__ import annotations

import re

from markdown import Extension
from markdown.preprocessors import Preprocessor

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):`~?([^`]+)`")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def doctest_fences(lines: list[str]) -> list[str]:
    """``lines`` with every doctest block outside a code fence wrapped in a ``pycon`` fence.

    >>> doctest_fences(["Text.", "", ">>> 1 + 1", "2", "", "More."])
    ['Text.', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'More.']
    """
    out: list[str] = []
    fence = None  # the opening marker of the code fence we are in
    i = 0
    while i < len(lines):
        line = lines[i]
        opened = FENCE.match(line)
        if fence is not None:
            out.append(line)
            if opened and opened.group(1).startswith(fence):
                fence = None
        elif opened:
            fence = opened.group(1)
            out.append(line)
        elif line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            if out and out[-1].strip():
                out.append("")
            out += [indent + "```pycon", *block, indent + "```"]
            if i < len(lines):
                out.append("")
                i += 1
            continue
        else:
            out.append(line)
        i += 1
    return out


def plain_roles(line: str) -> str:
    """``line`` with Sphinx roles as code spans.

    >>> plain_roles("see :class:`~gan_lab.losses.Hinge` and :func:`get_objective`")
    'see `gan_lab.losses.Hinge` and `get_objective`'
    """
    return ROLE.sub(r"`\1`", line)


class _Docstrings(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        return [plain_roles(line) for line in doctest_fences(lines)]


class DocstringsExtension(Extension):
    def extendMarkdown(self, md):
        md.preprocessors.register(_Docstrings(md), "gan_lab_docstrings", 40)  # before fenced code (25)


def on_config(config):
    config.markdown_extensions.append(DocstringsExtension())
    return config

"""A griffe extension for the API reference: the lab's ``Args:`` style, read as Google style.

The lab's docstrings describe parameters that go together on one line (``p, q: distributions of the
same shape``) and sometimes end an ``Args:`` section with a note in parentheses. Griffe's Google
parser takes each line ``name: text`` at the section's indent as one parameter, so it would warn that
"p, q" is not a parameter. This extension rewrites such a line as one item per name (each with the
description) and indents a line that is no ``name: text`` item under the item before it, before
the docstring is parsed. A parameter that is named but not in the signature still fails the strict
build. Loaded by mkdocstrings (``extensions:`` in mkdocs.yml).
"""

from __future__ import annotations

import re

from griffe import Extension

SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params|Keyword Args|Other Parameters):\s*$")
ITEM = re.compile(r"^(\s*)(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)(\s*\([^)]*\))?:(\s.*)?$")


def split_args(text: str) -> str:
    """``text`` with ``a, b: desc`` items of ``Args:`` sections split into one item per name.

    >>> print(split_args("Sum.\\n\\nArgs:\\n    p, q: tensors.\\n        Same shape.\\n    (see f)\\n"))
    Sum.
    <BLANKLINE>
    Args:
        p: tensors.
            Same shape.
        q: tensors.
            Same shape.
            (see f)
    <BLANKLINE>
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        header = SECTION.match(lines[i])
        out.append(lines[i])
        i += 1
        if not header:
            continue
        item_indent = None
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(header.group(1))):
            line = lines[i]
            if not line.strip():
                break
            item_indent = _indent(line) if item_indent is None else item_indent
            if _indent(line) > item_indent:  # a continuation line of the item before
                out.append(line)
                i += 1
                continue
            match = ITEM.match(line)
            if not match:  # not an item: a note under the item before it
                out.append(" " * 4 + line)
                i += 1
                continue
            names = [n.strip() for n in match.group(2).split(",")]
            rest = (match.group(3) or "") + ":" + (match.group(4) or "")
            cont = []
            i += 1
            while i < len(lines) and lines[i].strip() and _indent(lines[i]) > item_indent:
                cont.append(lines[i])
                i += 1
            for name in names:
                out.append(" " * item_indent + name + rest)
                out.extend(cont)
    return "\n".join(out)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


class SplitArgs(Extension):
    """Rewrite each docstring's ``Args:`` sections with :func:`split_args` before it is parsed."""

    def on_instance(self, *, obj, **kwargs) -> None:
        docstring = getattr(obj, "docstring", None)
        if docstring is not None and "," in docstring.value:
            docstring.value = split_args(docstring.value)

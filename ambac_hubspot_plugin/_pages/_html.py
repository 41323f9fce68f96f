"""A small HTML builder that escapes everything it is not told is markup.

Pages are built from :func:`el` calls, never from string formatting: every ``str`` child and
every attribute value is escaped, and only a :class:`Markup` (made by :func:`el` itself, or by
:func:`raw` for the few constant strings of the layout) passes through as is. A deal named
``<script>`` therefore reaches the browser as text, whoever forgets what.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Union

__all__ = ["Child", "Markup", "el", "escape", "join", "raw"]

_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]*$")  # SVG has viewBox
_VOID = frozenset({"br", "hr", "img", "input", "link", "meta", "source", "col", "wbr"})


class Markup(str):
    """A string that is already HTML: :func:`el` leaves it alone."""

    __slots__ = ()


Child = Union[Markup, str, int, float, None, Iterable["Child"]]  # noqa: UP007  # a recursive alias needs Union


def raw(text: str) -> Markup:
    """Trust ``text`` as HTML: only for constants written in this package, never for data."""
    return Markup(text)


def escape(value: object) -> Markup:
    """``value`` as HTML text: markup stays, anything else is escaped (quotes included)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def _children(children: Iterable[Child]) -> Iterable[str]:
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, str | int | float):
            yield escape(child)
        else:
            yield from _children(child)


def join(*children: Child) -> Markup:
    """Children side by side, each escaped unless it is markup."""
    return Markup("".join(_children(children)))


def _attribute(name: str, value: object) -> str:
    name = name.rstrip("_").replace("_", "-")
    if not _NAME.match(name):
        raise ValueError(f"not an attribute name: {name!r}")
    if value is True:
        return f" {name}"
    return f' {name}="{escape(value)}"'


def el(tag: str, *children: Child, **attributes: object) -> Markup:
    """One element: ``el("a", "Conflicts", href=url, class_="nav")``.

    Attribute names drop a trailing ``_`` (``class_``) and turn ``_`` into ``-``
    (``aria_label``); a value of ``True`` writes the bare attribute, ``None`` or ``False``
    leaves it out.
    """
    if not _NAME.match(tag):
        raise ValueError(f"not a tag name: {tag!r}")
    attrs = "".join(_attribute(name, value) for name, value in attributes.items()
                    if value is not None and value is not False)
    if tag in _VOID:
        if children:
            raise ValueError(f"<{tag}> takes no children")
        return Markup(f"<{tag}{attrs}>")
    return Markup(f"<{tag}{attrs}>{join(*children)}</{tag}>")

"""Sphinx extension for the book's publishing conventions (listed in ``_config.yml``).

* **Tables are numbered as tables.**  The chapters paste their tables with myst-nb's
  ``{glue:figure}`` directive, which makes a figure: Sphinx would number it "Fig. N".  A
  glued figure whose name starts with ``tab-`` (the book's convention, ``:name: tab-table1``)
  becomes a :class:`table_figure`, numbered with the tables ("Table N", ``numfig_format``),
  with its caption shown above it (by the stylesheet; the HTML keeps the figure's order);
  ``{numref}`` references say "Table N" too.
* **Wide tables scroll** sideways instead of being cut off (``bgrobust.css``).
* **The API reference** (``book/api.md``, autodoc) lists the library's own objects: members
  that scikit-learn adds to a subclass (``set_score_request``, ...) are left out, and a
  cross-reference in a docstring to an object the reference does not document (a private
  helper, a numpydoc type such as ``DataFrame``) is shown as text, as autodoc shows it
  without ``-n``; the build says how many there were (an info line, not a warning).  On
  every other page an unresolved reference is still a warning.

Examples
--------
In ``_config.yml``::

    sphinx:
      extra_extensions:
        - bgrobust.sphinxext

>>> from docutils import nodes
>>> figure = nodes.figure(ids=["tab-table1"])
>>> is_table_figure(figure), is_table_figure(nodes.figure(ids=["fig-2"]))
(True, False)
"""
from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx.transforms import SphinxTransform

#: Prefix of the names (``:name:``) of glued figures that are tables.
TABLE_PREFIX = "tab-"
#: The page of the API reference (a docname).
API_PAGE = "book/api"
#: The stylesheet of the book's conventions, shipped with the package.
STATIC_DIR = Path(__file__).resolve().parent / "sphinx_static"
CSS_FILE = "bgrobust.css"


class table_figure(nodes.figure):  # noqa: N801 - docutils names node classes in lower case
    """A glued figure that holds a table: rendered as a figure, numbered as a table."""


def is_table_figure(node: nodes.Node) -> bool:
    """Whether ``node`` is a figure named ``tab-...`` (see :data:`TABLE_PREFIX`)."""
    return (type(node) is nodes.figure
            and any(str(i).startswith(TABLE_PREFIX) for i in node.get("ids", [])))


class NumberTablesAsTables(SphinxTransform):
    """Turn every ``tab-`` figure of a document into a :class:`table_figure` (class ``bg-table``)."""

    default_priority = 500

    def apply(self, **kwargs) -> None:
        for figure in list(self.document.findall(is_table_figure)):
            table = table_figure(figure.rawsource, *figure.children, **figure.attributes)
            table["classes"] = [*table.get("classes", []), "bg-table"]
            for child in table.children:
                child.parent = table
            figure.replace_self(table)


def _caption(node: nodes.Element) -> str:
    for child in node:
        if isinstance(child, nodes.caption):
            return child.astext()
    return ""


#: ``|a - b|`` in a docstring (an absolute value) would be read as an RST substitution.
_ABSOLUTE_VALUE = re.compile(r"(?<![\\`|])\|(?=[^\s|`])([^|`\n]*?[^\s|`\\])\|(?![`|_\w])")


def escape_absolute_values(line: str) -> str:
    r"""Escape ``|x - y|`` so that RST reads it as text, not as a substitution reference.

    Examples
    --------
    >>> escape_absolute_values("close: |higher - lower| < threshold")
    'close: \\|higher - lower\\| < threshold'
    >>> escape_absolute_values("| a | b |")   # a table row is left alone
    '| a | b |'
    """
    return _ABSOLUTE_VALUE.sub(r"\\|\1\\|", line)


def _escape_docstring(app, what, name, obj, options, lines) -> None:
    lines[:] = [escape_absolute_values(line) for line in lines]


def _skip_foreign(app, what, name, obj, skip, options):
    """Leave out members defined by scikit-learn (the metadata-routing setters of estimators)."""
    module = getattr(obj, "__module__", None) or ""
    if module.startswith("sklearn."):
        return True
    return None


def _api_reference_as_text(app, env, node, contnode):
    """On the API page, show an unresolved Python cross-reference as its text, and count it."""
    if node.get("refdomain") != "py" or node.get("refdoc") != API_PAGE:
        return None
    unresolved = getattr(env, "bgrobust_api_unresolved", set())
    unresolved.add(node.get("reftarget"))
    env.bgrobust_api_unresolved = unresolved
    return contnode


def _report(app, exception) -> None:
    unresolved = getattr(app.env, "bgrobust_api_unresolved", set())
    if exception is None and unresolved:
        from sphinx.util import logging

        logging.getLogger(__name__).info(
            f"bgrobust.sphinxext: {len(unresolved)} docstring cross-reference target(s) are not in the "
            f"API reference and are shown as text (e.g. {', '.join(sorted(map(str, unresolved))[:5])})")


def _add_static(app, config) -> None:
    config.html_static_path = [*config.html_static_path, str(STATIC_DIR)]


def setup(app):
    """Register the node (numbered with the tables), the transform, the stylesheet and the API-page hooks."""
    app.add_enumerable_node(table_figure, "table", _caption)
    app.add_transform(NumberTablesAsTables)
    app.connect("config-inited", _add_static)
    app.add_css_file(CSS_FILE)
    app.connect("autodoc-skip-member", _skip_foreign)
    app.connect("autodoc-process-docstring", _escape_docstring)
    app.connect("missing-reference", _api_reference_as_text)
    app.connect("build-finished", _report)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

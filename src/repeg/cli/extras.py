"""The optional `lab` extras (plotly, kaleido, Ray, Databento) on the command line: a command that needs one
that is not installed is refused in one line naming the extra and how to install it (exit 2), not ended by a
`ModuleNotFoundError` traceback (exit 1, "internal error"). Only these packages count: a missing module of
repeg's own is a bug and stays one.
"""

from __future__ import annotations

#: Import names of the packages the `lab` extra installs (pyproject.toml, `[project.optional-dependencies]`).
LAB_PACKAGES: frozenset[str] = frozenset({"plotly", "kaleido", "ray", "databento", "databento_dbn"})
LAB_INSTALL = "pip install -e '.[lab]'"


def lab_extras_needed(exc: ModuleNotFoundError) -> str:
    """Why the command cannot go on when the import that raised `exc` was of a lab extra's package; `exc` itself
    is raised again when it was not (call this while handling it)."""
    package = (exc.name or "").partition(".")[0]
    if package not in LAB_PACKAGES:
        raise exc
    return f"needs the lab extras, and {package} is not installed: {LAB_INSTALL}"

"""A small Sphinx extension for the course website (listed in site/_config.yml)."""

from __future__ import annotations

__all__ = ["setup"]


def _without_thebe(app, pagename, templatename, context, doctree) -> None:
    """Drop sphinx-thebe's scripts from every page.

    Jupyter Book 1.0.4 with sphinx-thebe 0.3.1 writes thebe's inline configuration twice, and the
    second ``const THEBE_JS_URL`` is a JavaScript error on every page. The site has no live code
    cells anyway (thebe needs a Binder server); a notebook runs on Colab.
    """
    scripts = context.get("script_files")
    if scripts is None:
        return
    kept = [
        script
        for script in scripts
        if "sphinx-thebe" not in str(getattr(script, "filename", script) or "")
        and "THEBE_JS_URL" not in str(getattr(script, "attributes", {}).get("body", ""))
    ]
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", _without_thebe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

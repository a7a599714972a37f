"""Sphinx configuration for the sktransfer documentation.

Build from the repository root with::

    sphinx-build -b html docs docs/_build/html
"""

import re

import sktransfer

project = "sktransfer"
author = "sktransfer developers"
copyright = "sktransfer developers"
release = sktransfer.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build"]
templates_path = ["_templates"]
root_doc = "index"

# -- API reference -----------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
# autosummary already lists the members; numpydoc's own tables would repeat them.
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

# -- Gallery -----------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    # "Examples using X" sections on the API pages.
    "doc_module": ("sktransfer",),
    "backreferences_dir": "generated/backreferences",
    "download_all_examples": False,
    "remove_config_comments": True,
    # Timings would be written to docs/sg_execution_times.rst, outside _build.
    "write_computation_times": False,
}

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sktransfer {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = []


# -- Inherited docstrings ------------------------------------------------------
# Methods inherited from scikit-learn (score, set_fit_request, …) link to labels
# of scikit-learn's own documentation, which this build cannot resolve offline:
# keep their text, drop the link.
_FOREIGN_REFERENCE = re.compile(r":(?:ref|term):`([^`<]*?)\s*(?:<([^>]+)>)?`")


def _unlink_foreign_references(app, what, name, obj, options, lines):
    if (getattr(obj, "__module__", None) or "").startswith(("sklearn.", "torch.")):
        lines[:] = [
            _FOREIGN_REFERENCE.sub(
                lambda match: match.group(1).strip() or match.group(2), line
            )
            for line in lines
        ]


def _skip_torch_members(app, what, name, obj, skip, options):
    # TextEncoder is an nn.Module: torch's own methods belong to torch's
    # documentation (and their docstrings are not numpydoc).
    if what == "class" and (getattr(obj, "__module__", None) or "").startswith(
        "torch."
    ):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _unlink_foreign_references)
    app.connect("autodoc-skip-member", _skip_torch_members)

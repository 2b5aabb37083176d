"""Sphinx configuration of wsfast's documentation.

Build it with ``pip install -e '.[docs]'`` and ``sphinx-build -W -b html docs docs/_build``.
Nothing here reaches the network.
"""

import os
import sys

# Document the wsfast of this checkout, also when it is not installed.
sys.path.insert(0, os.path.abspath(".."))

import wsfast

project = "wsfast"
author = "wsfast contributors"
copyright = "wsfast contributors"
release = wsfast.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: ``{literalinclude}`` and the other directives as fenced blocks, headings as anchors.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc: members in source order; defaults as written in the source (DEFAULT_MAX_SIZE
# rather than 67108864).
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
add_module_names = False

html_theme = "furo"
html_title = f"wsfast {release}"
html_static_path = []
pygments_style = "sphinx"

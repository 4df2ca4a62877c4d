"""Which repository folder installs as which package (pyproject.toml's ``package-dir``), for the layout tests.

``tests/test_packaging.py`` checks this map against a built wheel, and ``tests/test_layers.py`` reads the import
graph through it.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SOURCE_FOLDERS = {
    "reasonembed_rag": "reasonembed_rag",
    "training": "reasonembed_rag.training",
    "demos": "reasonembed_rag.demos",
}
"""Repository folder -> the package it installs as."""

"""Benchmarks run every codec case on both twins; the compiled one is skipped when not built."""

import importlib

import pytest


@pytest.fixture(scope="session", params=["pure", "compiled"])
def codec(request):
    """The codec module being measured: ``wsfast._pure``, then ``wsfast._compiled``."""
    try:
        return importlib.import_module(f"wsfast._{request.param}")
    except ImportError as exc:
        pytest.skip(f"wsfast._compiled is not importable ({exc}); build it with `pip install -e .`")

"""Shared fixtures: every codec test runs against both twins, ``wsfast._pure`` and ``wsfast._compiled``.

When the compiled twin cannot be imported its tests are skipped, saying why; with
``WSFAST_REQUIRE_EXTENSION=1`` (as CI sets) they fail instead, so a broken build is never
mistaken for a green run.
"""

import faulthandler
import importlib
import os

import pytest
from hypothesis import settings

# Tests assert outcomes, never time: no per-example deadline, which a loaded machine
# would trip at random.
settings.register_profile("wsfast", deadline=None)
settings.load_profile("wsfast")

# The clients take a proxy from the environment by default; the servers of the tests run
# on this machine, where a proxy of the machine running them could not reach them.
for _name in ("http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_name, None)
    os.environ.pop(_name.upper(), None)


def load_compiled():
    """Import ``wsfast._compiled``, or skip (fail, when the extension is required) saying why."""
    try:
        return importlib.import_module("wsfast._compiled")
    except ImportError as exc:
        reason = f"wsfast._compiled is not importable ({exc}); build it with `pip install -e .`"
        if os.environ.get("WSFAST_REQUIRE_EXTENSION"):
            pytest.fail(f"WSFAST_REQUIRE_EXTENSION is set but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session", params=["pure", "compiled"])
def codec(request):
    """The codec module under test: each twin in turn (modules hold no state: one per session)."""
    if request.param == "pure":
        return importlib.import_module("wsfast._pure")
    return load_compiled()


@pytest.fixture(scope="session")
def twins():
    """Both codec modules, pure first, for tests that compare them."""
    return importlib.import_module("wsfast._pure"), load_compiled()


@pytest.fixture
def no_hang():
    """Dump the stacks and stop the run if a test hangs (for tests over real sockets)."""
    faulthandler.dump_traceback_later(60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def tls():
    """(server context, client context) trusting each other through a CA made for the tests."""
    pytest.importorskip("trustme")
    from wsfast.cli import _throwaway_tls  # the contexts `python -m wsfast demo --tls` uses

    return _throwaway_tls()

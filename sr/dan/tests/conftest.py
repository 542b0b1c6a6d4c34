import os
import sys

import pytest
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
torch.set_num_threads(os.cpu_count())


def _missing(msg):
    """A dependency the test needs is absent: skip with the message, or fail under CI=true
    (CI installs everything, so a skip there would hide a check that no longer runs).
    The Go tests do the same through internal/testdep."""
    if os.environ.get("CI", "").lower() in ("1", "t", "true"):
        pytest.fail(msg + " (CI=true: a missing dependency fails the test instead of skipping it)")
    pytest.skip(msg)


@pytest.fixture
def missing():
    return _missing

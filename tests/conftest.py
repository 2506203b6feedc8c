"""Shared fixtures: where the real data lives, and skips when it is absent."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SKELMTL_SHARED_DATA", REPO.parent / "shared" / "data"))

# Test modules that import torch at the top. Without torch (a runtime-only install, as on
# a Jetson) they are not collected, and the session header says so; every other module
# runs, which is how the edge/ and calibration/ rooms are tested on their oldest deps.
TORCH_MODULES = ("test_evaluate.py", "test_export.py", "test_jcd.py", "test_losses.py",
                 "test_models.py", "test_train.py")
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not HAVE_TORCH and collection_path.name in TORCH_MODULES:
        return True
    return None


def pytest_report_header(config: pytest.Config) -> str | None:
    if HAVE_TORCH:
        return None
    return f"torch is not installed: not collected {', '.join(TORCH_MODULES)}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _autograd_left_on() -> Iterator[None]:
    """Fail the test that leaves torch's autograd switched off (it breaks later tests)."""
    yield
    torch = sys.modules.get("torch")
    if torch is not None and not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail("this test (or the code it ran) left torch autograd disabled")

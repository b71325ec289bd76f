"""Shared pytest fixtures: the repository root and the real FSDD recordings."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The shared real-audio folder, relative to the repository root (see its DATA.md).
FSDD_DIR = REPO_ROOT.parent / "shared" / "data" / "fsdd"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the folder holding setup.py)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    """``../shared/data/fsdd`` (real Free Spoken Digit recordings); skips when absent."""
    if not (FSDD_DIR / "recordings").is_dir():
        pytest.skip(
            f"real FSDD recordings not found at {FSDD_DIR} (expected <repo>/../shared/data/fsdd/"
            "recordings/*.wav; see that folder's DATA.md)"
        )
    return FSDD_DIR

"""What several test modules share: paths, data factories, servers. No test imports another test."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The public evaluation data beside the checkout (absent on a bare clone: tests skip).
SHARED_DATA = REPO.parent / "shared" / "data"

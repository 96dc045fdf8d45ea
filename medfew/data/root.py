"""Where datasets live: an explicit root, else $MEDFEW_DATA, else ~/.medfew/data."""

import os
from pathlib import Path

DEFAULT_ROOT = Path.home() / ".medfew" / "data"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root folder (it may not exist yet)."""
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("MEDFEW_DATA") or DEFAULT_ROOT).expanduser()

"""Where datasets live: an explicit root, else $MEDFEW_DATA, else ~/.medfew/data."""

import os
from pathlib import Path

DEFAULT_ROOT = Path.home() / ".medfew" / "data"
#: how a missing file's message tells the user to move the data root (MEDFEW_DATA feeds paths.data_dir,
#: which feeds each data config's data.source.root)
SET_ROOT = "set MEDFEW_DATA, paths.data_dir or data.source.root"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root folder (it may not exist yet)."""
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("MEDFEW_DATA") or DEFAULT_ROOT).expanduser()

"""`import ssl` from the repository root must give Python's standard module, not medfew.ssl."""

import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_ssl_from_repo_root_is_stdlib() -> None:
    code = "import ssl, sys; print(ssl.__file__); print(hasattr(ssl, 'SSLContext'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    path, has_context = result.stdout.split()
    assert Path(path).resolve().parent == Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert has_context == "True"
    assert not (REPO / "ssl").exists() and not (REPO / "ssl.py").exists()

"""The README's commands on a machine without Python 3.10 say exactly what to install."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_missing_python_310_is_explained(tmp_path):
    if any(Path(d, "python3.10").exists() for d in ("/usr/bin", "/bin", "/usr/local/bin")):
        pytest.skip("this machine has a system Python 3.10, so the message cannot be provoked")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no pyenv, no shims
    result = subprocess.run(["make", "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Python 3.10 not found" in result.stderr
    assert "pyenv install 3.10" in result.stderr and "apt-get install python3.10" in result.stderr
    assert not (tmp_path / ".venv").exists()

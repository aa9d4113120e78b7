"""The trained Rasa model, cached by a fingerprint of everything training reads.

`rasa train` alone re-reads and re-hashes the project (15 s+ even when nothing changed); here an
unchanged project costs one hash, and switching back to an older version reuses its model.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from clinic.settings import PROJECT_ROOT

# What a trained model depends on: data, config, and our own NLU components and policies.
MODEL_INPUTS = ("config.yml", "domain.yml", "data", "clinic/nlu", "clinic/policies")
MODELS_DIR = PROJECT_ROOT / "models"


class TrainingFailed(Exception):
    pass


def fingerprint(root: Path = PROJECT_ROOT) -> str:
    digest = hashlib.sha256(f"rasa {version('rasa')}".encode())
    for name in MODEL_INPUTS:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.exists() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def model_path(root: Path = PROJECT_ROOT) -> Path:
    return MODELS_DIR / f"{fingerprint(root)}.tar.gz"


def ensure_model() -> Path:
    """The model for the project as it is now, trained only if no cached one matches.

    Concurrent callers (two test sessions, `make run` beside `make test`) wait for one training
    under a file lock, and a model appears in models/ only complete (trained aside, then renamed).
    """
    path = model_path()
    MODELS_DIR.mkdir(exist_ok=True)
    with (MODELS_DIR / ".training.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            path.touch()  # `rasa run` serves the newest model in models/: make it this one
            return path
        with tempfile.TemporaryDirectory(dir=MODELS_DIR, prefix=".training-") as scratch:
            command = [
                sys.executable, "-m", "rasa", "train",
                "--fixed-model-name", path.name.removesuffix(".tar.gz"), "--out", scratch,
            ]
            env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false"}
            result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, stdout=sys.stderr)
            trained = Path(scratch) / path.name
            if result.returncode != 0 or not trained.exists():
                raise TrainingFailed(f"rasa train exited with {result.returncode}; its output is above")
            os.replace(trained, path)
        return path

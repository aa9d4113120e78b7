"""Encryption at rest for message bodies, media and result files: Fernet keys from the environment.

`ENCRYPTION_KEYS` holds one or more keys, newest first. The newest encrypts; every listed key
decrypts, so rotating means putting a new key in front and keeping the old ones until
`clinic crypto rotate` has re-encrypted what was stored under them. Without keys a public
development key is used, which `check_production` refuses.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from clinic.settings import settings

# Public on purpose: development and tests only (`clinic.settings` refuses it in production).
DEVELOPMENT_KEY = "Y2xpbmljLWRldmVsb3BtZW50LWtleS1ub3Qtc2VjISE="

__all__ = ["InvalidToken", "decrypt", "decrypt_text", "encrypt", "encrypt_text", "new_key", "read_file", "reencrypt",
           "write_file"]


def new_key() -> str:
    return Fernet.generate_key().decode()


def configured_keys() -> list[str]:
    """The keys from ENCRYPTION_KEYS, newest first; the development key when none are set."""
    keys = [key.strip() for key in settings().encryption_keys.split(",") if key.strip()]
    return keys or [DEVELOPMENT_KEY]


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ValueError("ENCRYPTION_KEYS: each key must be 32 url-safe base64-encoded bytes "
                         "(make one with `clinic crypto new-key`)") from None


def _keys() -> MultiFernet:
    return _fernet(tuple(configured_keys()))


def encrypt(data: bytes) -> bytes:
    return _keys().encrypt(data)


def decrypt(token: bytes) -> bytes:
    """Raises InvalidToken when no configured key made `token` (or it was altered)."""
    return _keys().decrypt(token)


def encrypt_text(text: str) -> str:
    return encrypt(text.encode()).decode()


def decrypt_text(token: str) -> str:
    return decrypt(token.encode()).decode()


def reencrypt(token: bytes) -> bytes:
    """The same plaintext under the newest key (for `clinic crypto rotate`)."""
    return _keys().rotate(token)


def write_file(path: Path, data: bytes) -> None:
    """Store a file (a patient's photo, a nurse's attachment) encrypted, atomically: a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(encrypt(data))
    os.replace(partial, path)


def read_file(path: Path) -> bytes:
    """The plaintext of a file `write_file` stored (InvalidToken when no configured key made it)."""
    return decrypt(path.read_bytes())

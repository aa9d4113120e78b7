"""`clinic crypto rotate`: everything stored encrypted, re-encrypted under the newest key.

Put a new key first in ENCRYPTION_KEYS (`clinic crypto new-key`), keep the old ones after it, run
this; afterwards the old keys can be dropped. Every encrypted column (found from the models, so a
new one is included without a change here) and every file under MEDIA_DIR and RESULTS_DIR is rewritten, in batches
of short transactions: the clinic keeps running meanwhile, and a rerun after an interruption is
harmless (what is already under the newest key is simply rewritten again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update

from clinic import crypto
from clinic.db import Database
from clinic.models import EncryptedJSON, EncryptedText, metadata

BATCH = 500


@dataclass
class Rotated:
    rows: int = 0
    files: int = 0
    unreadable_files: list[str] | None = None  # under MEDIA_DIR but made by no configured key


def encrypted_columns() -> dict[str, list[str]]:
    """Table name → its encrypted columns."""
    found: dict[str, list[str]] = {}
    for table in metadata.sorted_tables:
        names = [c.name for c in table.columns if isinstance(c.type, (EncryptedJSON, EncryptedText))]
        if names:
            found[table.name] = names
    return found


def rotate(db: Database, *folders: Path) -> Rotated:
    """Re-encrypt every encrypted column, then every file under `folders` (media, result PDFs)."""
    result = Rotated(unreadable_files=[])
    for name, columns in encrypted_columns().items():
        table = metadata.tables[name]
        last = 0
        while True:
            with db.transaction() as session:
                rows = session.execute(
                    select(table.c.id, *(table.c[c] for c in columns))
                    .where(table.c.id > last).order_by(table.c.id).limit(BATCH)
                ).all()
                for row in rows:  # read with any key, written with the newest
                    session.execute(update(table).where(table.c.id == row.id)
                                    .values({c: row._mapping[c] for c in columns}))
            if not rows:
                break
            result.rows += len(rows)
            last = rows[-1].id
    for folder in folders:
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if not path.is_file() or path.name.endswith(".part"):
                continue
            try:
                crypto.write_file(path, crypto.read_file(path))
                result.files += 1
            except crypto.InvalidToken:
                result.unreadable_files.append(str(path))
    return result

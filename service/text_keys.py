"""One collation rule, computed here, for both backends.

MariaDB's utf8mb4_unicode_ci folds case and accents; SQLite's LIKE folds ASCII case only and
its ORDER BY compares bytes. So ``q``, ``sort=name`` and SKU uniqueness used to give different
answers on each. Instead the service stores folded keys next to the text, and the database only
compares them as code points (utf8mb4_bin on MySQL/MariaDB, BINARY on SQLite):

- ``name_key``: case-folded, compatibility-decomposed, accents (combining marks) removed:
  "Crème Brûlée", "CREME BRULEE" and its full-width form share one key. ``q`` matches
  a substring of it (folded the same way), and ``sort=name`` orders by it, then by id.
- ``sku_key``: NFKC and case-folded, accents kept: "ab-1" and "AB-1" are the same SKU,
  "é-1" and "e-1" are not. It carries the uniqueness.

Keys are cut at a fixed length (an index has a byte limit); only names whose folding expands
far past 255 characters (ligatures such as U+FDFA) are affected, and only in their tail.
"""

from __future__ import annotations

import unicodedata

from loguru import logger
from sqlalchemy import Connection, text

NAME_KEY_MAX = 700  # 700 * 4 bytes + the id fits InnoDB's 3072-byte index key
SKU_KEY_MAX = 255


def name_key(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return unicodedata.normalize("NFC", stripped).strip()[:NAME_KEY_MAX]


def sku_key(text: str | None) -> str | None:
    if text is None:
        return None
    return unicodedata.normalize("NFKC", text).casefold()[:SKU_KEY_MAX]


def search_key(q: str) -> str:
    """``q`` folded like names; not stripped, so "a " still needs the space."""
    decomposed = unicodedata.normalize("NFKD", q.casefold())
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return unicodedata.normalize("NFC", stripped)


def keys_for(values: dict[str, object]) -> dict[str, object]:
    """The key columns to write along with ``values`` (only for the fields it sets)."""
    keys: dict[str, object] = {}
    if isinstance(values.get("name"), str):
        keys["name_key"] = name_key(str(values["name"]))
    if "sku" in values:
        sku = values["sku"]
        keys["sku_key"] = sku_key(sku if isinstance(sku, str) else None)
    return keys


def backfill(conn: Connection) -> int:
    """Fill the keys of rows that have none (written before 0005, or by an older image)."""
    rows = conn.execute(
        text(
            "SELECT id, name, sku FROM items WHERE name_key = '' "
            "OR (sku IS NOT NULL AND sku_key IS NULL) ORDER BY id"
        )
    ).all()
    taken = {
        key for (key,) in conn.execute(text("SELECT sku_key FROM items WHERE sku_key IS NOT NULL"))
    }
    for row in rows:
        key = sku_key(row.sku)
        if key is not None and key in taken:
            logger.warning(
                "sku equal to an earlier item's under the folded rule; left without sku_key",
                item_id=row.id,
            )
            key = None
        elif key is not None:
            taken.add(key)
        conn.execute(
            text("UPDATE items SET name_key = :name_key, sku_key = :sku_key WHERE id = :id"),
            {"name_key": name_key(row.name), "sku_key": key, "id": row.id},
        )
    return len(rows)

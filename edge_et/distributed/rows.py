"""The rows Ray Data carries: one per line, `index`, a JSON `payload` and the picture's bytes.

JSON keeps every row the same Arrow shape whatever a line holds (ids of any JSON type, error
lines, results with nested stats), and the driver decodes exactly what it writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_et.runtime.batch import BatchItem

COLUMNS = ("index", "payload", "picture")


def row(index: int, payload: dict, picture: bytes = b"") -> dict:
    return {"index": index, "payload": json.dumps(payload), "picture": picture}


def rows_of(batch: dict) -> list[dict]:
    """A numpy batch (dict of columns) as a list of row dicts."""
    count = len(batch["index"])
    return [{name: batch[name][i] for name in COLUMNS} for i in range(count)]


def batch_of(rows: list[dict]) -> dict:
    """Row dicts as a numpy batch; the bytes column is dropped once the picture was used."""
    return {
        "index": np.array([int(r["index"]) for r in rows], dtype=np.int64),
        "payload": np.array([r["payload"] for r in rows], dtype=object),
        "picture": np.array([bytes(r["picture"]) for r in rows], dtype=object),
    }


def payload_of(entry: dict) -> dict:
    return json.loads(entry["payload"])


def item_to_dict(item: BatchItem) -> dict:
    return {
        "index": item.index,
        "image": str(item.image) if item.image else None,
        "question": item.question,
        "id": item.id,
        "hint": item.hint,
        "seed": item.seed,
        "error": item.error,
    }


def item_from_dict(data: dict) -> BatchItem:
    return BatchItem(
        index=data["index"],
        image=Path(data["image"]) if data["image"] else None,
        question=data["question"],
        id=data["id"],
        hint=data["hint"],
        seed=data["seed"],
        error=data["error"],
    )

"""Deployments added at run time (``/model/new``), kept in the database so every instance serves them.

A row holds the deployment as LiteLLM's API gives it (``model_name``, ``litellm_params``,
``model_info``), environment references (``os.environ/NAME``) unresolved: each instance
resolves them when it loads the row. Every change bumps the store's revision counter, so the
other instances pick it up with their next poll (or at once through the Redis broadcast).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from keystile.store.database import Database, Statement


@dataclass(slots=True)
class StoredModel:
    model_id: str
    model_name: str
    litellm_params: dict[str, Any]
    model_info: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


_COLUMNS = "model_id, model_name, litellm_params, model_info, created_at, updated_at"


class ModelTable:
    def __init__(self, db: Database, bump: Callable[[], Statement]) -> None:
        self.db = db
        self._bump = bump
        """The statement that bumps the store's revision counter (``Store._bump_statement``)."""

    async def all(self) -> list[StoredModel]:
        rows = await self.db.fetchall(f"SELECT {_COLUMNS} FROM models ORDER BY created_at, model_id")
        return [_model(row) for row in rows]

    async def get(self, model_id: str) -> StoredModel | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM models WHERE model_id = ?", (model_id,))
        return _model(row) if row else None

    async def insert(self, model: StoredModel) -> None:
        now = time.time()
        model.created_at = model.created_at or now
        model.updated_at = now
        await self.db.transaction(
            [
                (
                    f"INSERT INTO models ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        model.model_id,
                        model.model_name,
                        orjson.dumps(model.litellm_params).decode(),
                        orjson.dumps(model.model_info).decode(),
                        model.created_at,
                        model.updated_at,
                    ),
                ),
                self._bump(),
            ]
        )

    async def delete(self, model_id: str) -> bool:
        results = await self.db.transaction(
            [("DELETE FROM models WHERE model_id = ? RETURNING model_id", (model_id,)), self._bump()]
        )
        return bool(results[0])


def _model(row: tuple) -> StoredModel:
    return StoredModel(row[0], row[1], orjson.loads(row[2]), orjson.loads(row[3]) if row[3] else {}, row[4], row[5])

"""Alembic environment: the engine comes from `migrate.upgrade`, the schema from `tables`."""

from __future__ import annotations

from alembic import context

from modelarb.service.store.tables import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    context.run_migrations()

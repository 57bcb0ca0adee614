"""Persistence: SQLAlchemy tables, Alembic migrations, one engine and session factory (SQLite or PostgreSQL)."""

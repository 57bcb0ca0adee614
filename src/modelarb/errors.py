"""One exception hierarchy: every user-facing failure is a ModelarbError."""

from __future__ import annotations


class ModelarbError(Exception):
    """Base of all errors modelarb raises on purpose; the message tells the user what to do."""


class DataError(ModelarbError):
    """A data file or table is malformed, or a market cannot be formed from it."""


class DatasetError(ModelarbError):
    """A registered dataset cannot be found, downloaded or verified."""


class AnalysisError(ModelarbError):
    """An analysis was asked for something the data or options cannot give."""


class ServiceError(ModelarbError):
    """The broker cannot start or serve: a bad providers file, plan, database or request."""

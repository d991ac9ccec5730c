"""The package's exceptions: one base class, one subclass per failure kind."""

from __future__ import annotations

__all__ = ["BackendUnavailable", "BrokerError", "CatalogError", "ConfigError", "InvalidEvent",
           "PrsmError", "StoreUnavailable"]


class PrsmError(Exception):
    """Base class of every error raised by prsm-events."""


class InvalidEvent(PrsmError):
    """An incoming message that cannot be accepted; ``code`` is stable, ``detail`` human.

    >>> InvalidEvent("unknown_model", "model 'x' is not in the catalog").reason
    "unknown_model: model 'x' is not in the catalog"
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


class CatalogError(PrsmError):
    """A model catalog file that is malformed."""


class StoreUnavailable(PrsmError):
    """The ClickHouse store cannot be reached or refused a write; retry later."""


class ConfigError(PrsmError, ValueError):
    """Settings that cannot work (a missing credential, a file that is not there)."""


class BrokerError(PrsmError):
    """The local Kafka broker could not be resolved, started or reached."""


class BackendUnavailable(PrsmError):
    """The requested scoring backend (CuPy) cannot be imported or sees no GPU."""

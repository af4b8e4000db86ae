"""Hapax client for Python: the native completion API of the Hapax LLM gateway, standard library only."""

from .client import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    Client,
    Completion,
    Delta,
    Done,
    HapaxError,
    InternalError,
    ProcessingError,
    RateLimitError,
    Usage,
    ValidationError,
    parse_retry_after,
)

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "Client",
    "Completion",
    "Delta",
    "Done",
    "HapaxError",
    "InternalError",
    "ProcessingError",
    "RateLimitError",
    "Usage",
    "ValidationError",
    "parse_retry_after",
]

"""Where the run store lives: ``$AGENT_OTEL_HOME/agent-otel.db`` by default, a path, a URL, or nowhere.

The ``store`` config key (env ``AGENT_OTEL_STORE``) takes a SQLite path, a ``postgresql://`` URL or
``false``; unset means SQLite in the agent-otel home directory (``AGENT_OTEL_HOME``, default
``~/.agent-otel``), which is created with mode 0700.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HOME_ENV = "AGENT_OTEL_HOME"
DEFAULT_HOME = "~/.agent-otel"
DB_NAME = "agent-otel.db"
_PG_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved store location. ``kind`` is ``sqlite`` or ``postgresql``."""

    kind: str
    location: str  # file path or URL (with any password)

    @property
    def display(self) -> str:
        """The location safe to print: a URL's password is masked."""
        return redact_url(self.location) if self.kind == "postgresql" else self.location


def home() -> str:
    """The agent-otel home directory (not created here)."""
    return os.path.abspath(os.path.expanduser(os.environ.get(HOME_ENV) or DEFAULT_HOME))


def resolve(value: Any) -> Target | None:
    """Turn the ``store`` config value into a :class:`Target`; None when the store is disabled."""
    if value is False:
        return None
    if value is None or value is True or (isinstance(value, str) and not value.strip()):
        return Target("sqlite", os.path.join(home(), DB_NAME))
    text = str(value).strip()
    if text.lower().startswith(_PG_SCHEMES):
        return Target("postgresql", text)
    return Target("sqlite", os.path.abspath(os.path.expanduser(text)))


def redact_url(url: str) -> str:
    """``url`` safe to print: the password of its user info and every query parameter naming a password
    (libpq reads ``?password=`` and ``?sslpassword=`` as well as ``user:password@``) are ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://***"
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        # The host and port as given: `parts.port` raises ValueError for a port beyond 65535, which
        # reached the operator as `ValueError: Port out of range 0-65535`, naming no URL.
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    if "password" in query.lower():
        query = _QUERY_PASSWORD.sub(r"\1=***", query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# A query parameter whose name holds `password`, in any case, and its value up to the next `&`.
_QUERY_PASSWORD = re.compile(r"(?i)((?:^|(?<=[&;]))[^&;=]*password[^&;=]*)=[^&;]*")

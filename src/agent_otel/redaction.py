"""Redaction of raw tool arguments and results before they are allowed to leave the process.

Raw values are only ever attached when a user sets ``logging.events.store_args: true``; even then they
pass through here first. Two layers: keys whose *name* looks secret have their whole value replaced, and
string values are scanned for e-mail addresses, phone numbers, card numbers (Luhn-checked, so order ids
survive), bearer tokens and well-known API key shapes. The collector's redaction processor is a second,
independent layer; this one exists so that nothing sensitive is exported in the first place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from agent_otel.hashing import canonical_json, jsonable

MASK = "[REDACTED]"

DEFAULT_SECRET_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "credential",
    "cookie",
    "session",
    "ssn",
)

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9\-._~+/]{8,}=*")
_API_KEY = re.compile(
    r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{30,}|eyJ[A-Za-z0-9_\-]{10,}\."
    r"[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})"
)
_CARD = re.compile(r"\b(?:\d[ \-]?){12,18}\d\b")
_PHONE = re.compile(r"(?<![\w/\-])\+?\(?\d{1,4}\)?(?:[ .\-]?\(?\d{2,4}\)?){2,5}(?![\w/])")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[CARD]" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


def _mask_phone(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group(0))
    return "[PHONE]" if 7 <= digits <= 15 else match.group(0)


class Redactor:
    """Redacts nested values; constructed once from config, used off the hot path when possible."""

    def __init__(
        self,
        secret_keys: Iterable[str] = DEFAULT_SECRET_KEYS,
        max_chars: int = 4096,
        patterns: Iterable[str] = (),
    ) -> None:
        keys = [k.lower() for k in secret_keys]
        self._key_re = re.compile("|".join(re.escape(k) for k in keys)) if keys else None
        self._extra = [re.compile(p) for p in patterns]
        self.max_chars = max_chars

    def is_secret_key(self, key: str) -> bool:
        normalised = key.lower().replace("-", "_")
        return bool(self._key_re and self._key_re.search(normalised))

    def redact_text(self, text: str) -> str:
        text = _API_KEY.sub("[API_KEY]", text)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
        text = _EMAIL.sub("[EMAIL]", text)
        text = _CARD.sub(_mask_card, text)
        text = _PHONE.sub(_mask_phone, text)
        for pattern in self._extra:
            text = pattern.sub(MASK, text)
        return text

    def redact(self, value: Any) -> Any:
        """Return a JSON-native copy of ``value`` with secrets masked (the input is not modified)."""
        return self._walk(jsonable(value))

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {k: (MASK if self.is_secret_key(k) else self._walk(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        return value

    def to_attribute(self, value: Any) -> str:
        """Redacted canonical JSON, truncated to ``max_chars`` with a marker saying how much was cut."""
        text = canonical_json(self.redact(value)).decode("utf-8", "replace")
        if len(text) > self.max_chars:
            cut = len(text) - self.max_chars
            text = f"{text[: self.max_chars]}...[truncated {cut} chars]"
        return text

"""Redaction of raw tool arguments and results before they are allowed to leave the process.

Raw values are only ever attached when a user sets ``logging.events.store_args: true``; even then they
pass through here first. Two layers: keys whose *name* looks secret have their whole value replaced, and
string values are scanned for ``<secret key> = value`` / ``<secret key>: value`` pairs (the same rule
decides which keys are secret, so ``password=hunter2``, ``"api_key": "..."`` and ``x-api-key: ...``
inside a string are masked but ``max_tokens: 1024`` is not), e-mail addresses, phone numbers, card
numbers (Luhn-checked, so order ids survive), bearer tokens and well-known API key shapes. The
collector's redaction processor is a second, independent layer; this one exists so that nothing
sensitive is exported in the first place.

Which keys are secret (``Redactor.is_secret_key``), exactly:

1. The key is cut into lower-case *segments* at every character that is not a letter or digit and at
   camelCase boundaries (``x-api-key`` -> ``x api key``, ``refreshToken`` -> ``refresh token``,
   ``APIKey`` -> ``api key``). Each configured name (``redaction.keys``, or ``DEFAULT_SECRET_KEYS``) is
   cut the same way and its segments joined, so ``api_key``, ``apiKey`` and ``api-key`` are one name,
   ``apikey``.
2. If all the key's segments joined equal a configured name, the key is secret. This always wins.
3. Otherwise, if any segment is one of ``QUANTITY_SEGMENTS`` (``count``, ``limit``, ``max``, ``min``,
   ``used``, ``total``, ``num``, ``length``, ``len``, ``size``), the key names an amount and is not
   secret: ``token_count``, ``max_tokens``, ``session_limit``.
4. Otherwise the key is secret if some run of consecutive segments, joined, equals a configured name
   (``db_password``, ``session_id``, ``x-api-key``, ``client_secret``, ``set-cookie``), or if a single
   segment *ends with* a configured name of at least ``MIN_TAIL_CHARS`` (5) characters, which catches
   compounds written without separators (``accesstoken``, ``dbpassword``, ``jsessionid``).

Segments are compared whole, so a plural is another word: ``tokens`` (LLM usage fields such as
``input_tokens`` and ``tokens_used``) does not match ``token``; the defaults list the plurals that do
name secrets (``passwords``, ``secrets``, ``credentials``, ``cookies``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from agent_otel.hashing import canonical_json, jsonable

MASK = "[REDACTED]"

DEFAULT_SECRET_KEYS: tuple[str, ...] = (
    "password",
    "passwords",
    "passwd",
    "secret",
    "secrets",
    "token",
    "authorization",
    "api_key",
    "access_key",
    "private_key",
    "credential",
    "credentials",
    "cookie",
    "cookies",
    "session",
    "sessionid",
    "sessid",
    "ssn",
)

# A key with one of these segments names an amount (``token_count``, ``max_tokens``, ``session_limit``),
# not the secret itself; without this, every LLM usage field would be masked and the data made useless.
QUANTITY_SEGMENTS: frozenset[str] = frozenset(
    {"count", "limit", "max", "min", "used", "total", "num", "length", "len", "size"}
)

# Shortest configured name that also matches as the end of a segment (see ``Redactor.is_secret_key``).
MIN_TAIL_CHARS = 5

_SEGMENT = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def key_segments(name: str) -> list[str]:
    """Lower-case name segments of ``name``: split on anything not a letter or digit and on camelCase.

    ``x-api-key`` -> ``[x, api, key]``; ``refreshToken`` -> ``[refresh, token]``; ``APIKey`` ->
    ``[api, key]``; ``db.password`` -> ``[db, password]``. Segments, not substrings, so that ``tokens``
    (a count, in LLM usage fields) is not ``token`` (a credential).
    """
    return [m.group(0).lower() for m in _SEGMENT.finditer(name)]


# `<key> = value` / `<key>: value` inside free text (log lines, headers, env files, JSON or YAML held in a
# string). The key may be quoted, also with backslash-escaped quotes (JSON encoded twice); the value is a
# quoted string, or an optional auth scheme (`Basic`, `Bearer`, ...) and everything up to the next
# whitespace, `,`, `;`, `&`, quote or closing bracket (a quote that is never closed is taken with it).
# Whether the key is secret is decided by ``Redactor.is_secret_key``, so the configured names govern free
# text exactly as they govern mapping keys. `(?![=:/])` leaves `==`, `::`, `:=` and `scheme://` alone.
_KEY_VALUE = re.compile(
    r"""(?<![\w.\-])(?P<q>\\?["']?)(?P<key>[A-Za-z_][\w.\-]*)(?P=q)[ \t]*(?P<sep>[=:])(?![=:/])[ \t]*"""
    r'(?:(?P<eq>\\")(?P<ev>(?:(?!\\").)*)\\"'  # \"...\"
    r'|(?P<dq>")(?P<dv>(?:[^"\\\n]|\\.)*)"'  # "..."
    r"|(?P<sq>')(?P<sv>[^'\n]*)'"  # '...'
    r"|(?P<scheme>(?i:bearer|basic|token|digest|negotiate|ntlm)[ \t]+)?"  # Basic dXNl...
    r"""(?P<bare>(?:\\?["'])?[^\s,;&"'<>)\]}]+))"""
)
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9\-._~+/]{8,}=*")
_API_KEY = re.compile(
    r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{30,}|eyJ[A-Za-z0-9_\-]{10,}\."
    r"[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})"
)
_CARD = re.compile(r"\b(?:\d[ \-]?){12,18}\d\b")
# A phone number needs a shape that dates, times, versions, ids and plain numbers do not have: a leading
# `+` (international), an area code in parentheses, the North American 3-3-4 grouping with one separator,
# or a national trunk `0` followed by a separator. Groups after the first have 3+ digits, so the 2-digit
# groups of `2026-11-24` and `24.11.2026` never qualify; `:` is never a separator, so times survive; a
# run of digits with no separator (`1732443300`, an epoch) is a number, not a phone. Not preceded by a
# word character, `.`, `:`, `/`, `+` or `-`, and not followed by a word character, `/` or `[.:-]digit`,
# so the middle of an id, a path, a version or a timestamp is never taken for one.
_PHONE = re.compile(
    r"(?<![\w.:/+\-])(?:"
    r"\+\d{1,3}(?:[ .\-]?(?:\(\d{1,5}\)|\d{1,5})){1,6}"  # +1 415 555 0100, +44 20 7946 0958
    r"|\(\d{2,5}\)[ .\-]?\d{3,4}[ .\-]?\d{3,5}"  # (415) 555-0100, (030) 1234567
    r"|(?:1[ .\-])?\d{3}(?P<sep>[ .\-])\d{3}(?P=sep)\d{4}"  # 415-555-0100, 1-800-555-0100
    r"|0\d{1,4}[ /\-]\d{3,8}(?:[ \-]\d{3,4})?"  # 030 1234567, 020 7946 0958
    r")(?![\w/]|[.:\-]\d)"
)


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
        # Each configured name in its compact form (segments joined, separators gone): `api_key`,
        # `apiKey` and `api-key` in the config all mean the same thing.
        self._names = frozenset(c for c in ("".join(key_segments(k)) for k in secret_keys) if c)
        # Only names this long may end a segment: `accesstoken` is a token, but `spin` is not a `pin`.
        self._tails = tuple(n for n in self._names if len(n) >= MIN_TAIL_CHARS)
        self._extra = [re.compile(p) for p in patterns]
        self.max_chars = max_chars

    def is_secret_key(self, key: str) -> bool:
        """Whether a value stored under ``key`` is masked whole; the rule is in the module docstring."""
        segments = key_segments(key)
        if not segments or not self._names:
            return False
        if "".join(segments) in self._names:
            return True  # the whole key is a configured name, even `token_count` if a user lists it
        if QUANTITY_SEGMENTS.intersection(segments):
            return False
        for i, first in enumerate(segments):
            if first in self._names or first.endswith(self._tails):
                return True  # the tail: `accesstoken`, `dbpassword`, compounds written without separators
            run = first
            for nxt in segments[i + 1 :]:
                run += nxt
                if run in self._names:
                    return True
        return False

    def redact_text(self, text: str) -> str:
        text = self._mask_key_values(text)
        text = _API_KEY.sub("[API_KEY]", text)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
        text = _EMAIL.sub("[EMAIL]", text)
        text = _CARD.sub(_mask_card, text)
        text = _PHONE.sub(_mask_phone, text)
        for pattern in self._extra:
            text = pattern.sub(MASK, text)
        return text

    def _mask_key_values(self, text: str) -> str:
        """Mask the value of every `secret-key=value` / `secret-key: value` pair in ``text``.

        A loop rather than ``re.sub`` because a pair whose key is *not* secret must not swallow its value:
        in ``note: password=hunter2`` the value of ``note`` holds the pair that matters, so the search
        resumes right after the separator.
        """
        out: list[str] = []
        pos = 0
        while (m := _KEY_VALUE.search(text, pos)) is not None:
            if not self.is_secret_key(m.group("key")):
                out.append(text[pos : m.end("sep")])
                pos = m.end("sep")
                continue
            quoted = (("eq", "ev"), ("dq", "dv"), ("sq", "sv"))
            inner = next((v for q, v in quoted if m.group(q) is not None), "bare")
            out.append(text[pos : m.start(inner)])
            out.append(MASK)
            out.append(text[m.end(inner) : m.end()])
            pos = m.end()
        out.append(text[pos:])
        return "".join(out)

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

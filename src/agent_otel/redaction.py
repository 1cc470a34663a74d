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

import base64
import binascii
import re
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agent_otel import conventions as c
from agent_otel.hashing import Cut, canonical_json, jsonable

MASK = "[REDACTED]"
# How far past the cut a string is redacted before it is cut: a secret straddling the cut (an e-mail, a
# card number, a token up to this long) is recognised whole and masked, never half kept.
CUT_SLACK = 512

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
# The password of a URL's user info: `https://admin:pw@host/x`, `postgresql://app:pw@db/x`. The scheme and
# the user stay (they say where the URL points); the password goes.
_URL_PASSWORD = re.compile(r"(?i)\b(?P<head>[a-z][a-z0-9+.\-]*://[^/\s:@]*):(?P<pw>[^@\s/]+)@")
# A secret in prose: a secret key's name, an optional `is`/`was`, then a word that looks like a credential
# (see _looks_secret): `login failed with password hunter2!`, `the token was ab12cd34`. Whether the word
# is a secret key's name is decided by ``Redactor.is_secret_key``, as for `key=value` pairs.
_PROSE = re.compile(
    r"(?P<key>\b[A-Za-z][A-Za-z_\-]*)(?P<gap>[ \t]+(?:(?i:is|was)[ \t]+)?)(?P<value>[^\s,;\"'<>()\[\]{}]{4,})"
)
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z_\-]*)[ \t]+$")
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9\-._~+/]{8,}=*")
_API_KEY = re.compile(
    r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}"  # Stripe
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{30,}|eyJ[A-Za-z0-9_\-]{10,}\."
    r"[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})"
)
_CARD = re.compile(r"\b(?:\d[ \-]?){12,18}\d\b")
# Dots are also a card separator (`4111.1111.1111.1111`), but only in card groupings (4-4-4-4, 4-6-5,
# 4-4-4-4-3), never as in a version or an IP address; the Luhn check still decides.
_CARD_DOTTED = re.compile(r"(?<![\w.])(?:\d{4}(?:\.\d{4}){3}(?:\.\d{3})?|\d{4}\.\d{6}\.\d{4,5})(?![\w]|\.\d)")
# US Social Security numbers, 3-2-4 with dashes, without the numbers never issued (000, 666 or 9xx first,
# 00 in the middle, 0000 last). Dates (4-2-2) and phone numbers (3-3-4) have other shapes.
_SSN = re.compile(r"(?<![\w.\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w\-]|\.\d)")
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


def _closing(text: str, start: int, quote: str) -> int:
    """The end of the JSON object or list that opens at ``text[start]`` (``{`` or ``[``): past its matching
    bracket, brackets inside its strings not counted; the end of the text if it is never closed (a value
    cut short). ``quote`` is how the key before it was quoted: ``\\"`` for JSON encoded twice, whose
    strings are delimited by ``\\"``. Linear in what it reads."""
    delimiter = '\\"' if quote == '\\"' else '"'
    depth = 0
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if text.startswith(delimiter, i):  # a string: skip to its closing delimiter
            i += len(delimiter)
            while i < n and not text.startswith(delimiter, i):
                i += 2 if text[i] == "\\" and delimiter == '"' else 1
            i += len(delimiter)
            continue
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


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


def _looks_secret(word: str) -> bool:
    """Whether a word after a secret key's name in prose is the secret: it has a digit or a symbol
    (`hunter2`, `s3cr3t!`, `ab12-cd34`). Plain words (`reset`, `expired`, `incorrect`) are kept, so
    `password reset failed` stays readable; the price is that an all-letters password in prose is kept."""
    word = word.rstrip(".!?:")
    return len(word) >= 4 and not word.isalpha()


def _base64_of(value: Any) -> str | None:
    """The base64 text of bytes as the JSON copy holds them (``{"$bytes": ...}``, hashing's form)."""
    if isinstance(value, Mapping) and len(value) == 1:
        encoded = value.get("$bytes")
        if isinstance(encoded, str):
            return encoded
    return None


def _unbase64(encoded: str) -> bytes | None:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _utf8(data: bytes, cut: bool) -> str | None:
    """``data`` as text, or None if it is not UTF-8; a ``cut`` one may end inside a character."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8")
        return None


def _unique(key: str, taken: Mapping[str, Any]) -> str:
    """``[EMAIL]`` is taken by another masked key: ``[EMAIL]#2``, so neither value is lost."""
    n = 2
    while f"{key}#{n}" in taken:
        n += 1
    return f"{key}#{n}"


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
        text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
        text = _API_KEY.sub("[API_KEY]", text)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
        text = self._mask_prose(text)
        text = _EMAIL.sub("[EMAIL]", text)
        text = _SSN.sub("[SSN]", text)
        text = _CARD.sub(_mask_card, text)
        text = _CARD_DOTTED.sub(_mask_card, text)
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
            bare = m.group("bare")
            if bare is not None and bare[0] in "{[":  # an object or a list held in text: all of it
                end = _closing(text, m.start("bare"), m.group("q"))
                quote = m.group("q") if m.group("q") in ('"', '\\"') else ""  # stays valid JSON
                out.append(text[pos : m.start("bare")] + quote + MASK + quote)
                pos = end
                continue
            quoted = (("eq", "ev"), ("dq", "dv"), ("sq", "sv"))
            inner = next((v for q, v in quoted if m.group(q) is not None), "bare")
            out.append(text[pos : m.start(inner)])
            out.append(MASK)
            out.append(text[m.end(inner) : m.end()])
            pos = m.end()
        out.append(text[pos:])
        return "".join(out)

    def _mask_prose(self, text: str) -> str:
        """Mask the credential-looking word that follows a secret key's name in prose."""
        out: list[str] = []
        done = search = 0  # text[:done] is in out; the next match is looked for from search
        while (m := _PROSE.search(text, search)) is not None:
            value = m.group("value")
            if _looks_secret(value) and self._names_secret(text, m):
                kept = value[len(value.rstrip(".!?:")) :]  # the sentence's full stop is not the secret
                out.append(text[done : m.start("value")] + MASK + kept)
                done = search = m.end()
            else:
                search = m.end("key")  # the value may be the next key: `my password x1`
        out.append(text[done:])
        return "".join(out)

    def _names_secret(self, text: str, m: re.Match[str]) -> bool:
        """Whether the word before the value names a secret, alone (`password`) or with the word before
        it as one configured name (`api key`, `access key`). Only as a whole: `reset password for user1`
        keeps `user1`, since `password for` is no name."""
        key = m.group("key")
        if self.is_secret_key(key):
            return True
        before = _WORD_BEFORE.search(text, max(m.start("key") - 64, 0), m.start("key"))
        return before is not None and "".join(key_segments(before.group(1) + " " + key)) in self._names

    def redact(self, value: Any) -> Any:
        """Return a JSON-native copy of ``value`` with secrets masked (the input is not modified)."""
        return self._walk(jsonable(value))

    def _walk(self, value: Any) -> Any:
        if isinstance(value, Cut):  # redacted with what follows the cut, then cut
            return value.finish(self.redact_text(value))
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            encoded = _base64_of(value)
            if encoded is not None:
                return self._bytes(encoded)
            out: dict[str, Any] = {}
            for k, v in value.items():
                masked = self._walk(k)  # a key may be the secret itself: {"alice@example.com": 1}
                if masked in out:
                    masked = _unique(masked, out)
                out[masked] = MASK if self.is_secret_key(k) else self._walk(v)
            return out
        if isinstance(value, list):
            if len(value) == 2 and self._names_a_secret(value[0]):
                return [self._walk(value[0]), MASK]  # a (name, value) pair: a header, a cookie, a form field
            return [self._walk(v) for v in value]
        return value

    def _names_a_secret(self, name: Any) -> bool:
        """Whether ``name``, the first of a pair, is a secret key: a string, or bytes that are its text."""
        encoded = _base64_of(name)
        if encoded is not None:
            data = _unbase64(encoded)
            name = None if data is None else _utf8(data, False)
        return isinstance(name, str) and len(name) <= 64 and self.is_secret_key(name)

    def _bytes(self, encoded: str) -> dict[str, str]:
        """Bytes, which the JSON copy holds as base64 (``{"$bytes": ...}``, the form the hashes use): a
        redactor cannot read base64, so a secret in a request body or a file read would leave the process
        encoded but whole. Text (UTF-8) is decoded, redacted and kept readable as ``{"$utf8": ...}``;
        anything else is replaced by its size, since nothing could tell what it holds."""
        cut = encoded if isinstance(encoded, Cut) else None
        data = _unbase64(encoded[: len(encoded) - len(encoded) % 4])  # a cut one: its whole quads
        size = (cut.full if cut is not None else len(encoded)) * 3 // 4 - encoded.count("=")
        text = None if data is None else _utf8(data, cut is not None)
        if text is None:
            return {"$bytes": f"[{size} bytes, not text: not shown]"}
        text = self.redact_text(text)
        if cut is not None:  # keep as much of the text as the base64 was given room for
            keep = cut.keep * 3 // 4
            text = f"{text[:keep]}...[truncated, about {size} bytes in all]"  # the cut lost the padding
        return {"$utf8": text}

    def bounded(self, value: Any) -> tuple[Any, str]:
        """``value`` cut to ``max_chars`` first, then redacted once: ``(copy, text)``, the JSON-native copy
        for events and the store, and its canonical JSON for a span attribute, both within the limit.

        The cost follows ``max_chars``, not the value: a 50 MB argument is cut before anything reads it
        all, and nothing downstream ever holds more than the limit of it.
        """
        copy = self._walk(jsonable(value, self.max_chars, CUT_SLACK))
        text = canonical_json(copy).decode("utf-8", "replace")
        if len(text) > self.max_chars:  # the markers and JSON punctuation may still overrun a little
            text = f"{text[: self.max_chars]}...[truncated {len(text) - self.max_chars} chars]"
        return copy, text

    def to_attribute(self, value: Any) -> str:
        """Redacted canonical JSON, truncated to ``max_chars`` with a marker saying how much was cut."""
        return self.bounded(value)[1]


# --- exceptions ---------------------------------------------------------------------------------------

STACKTRACE_MODES = ("redacted", "off", "raw")
_STACKTRACE_CHARS = 16_384  # the end of a long stack trace, where the failing frame and message are

_for_config: tuple[Any, Redactor] | None = None


def for_config(config: Any = None) -> Redactor:
    """The redactor the ``redaction.*`` keys describe (built once per configuration), also when
    ``store_args`` is off: exception messages are redacted whatever that setting says."""
    global _for_config
    cached = _for_config
    if cached is not None and cached[0] is config:
        return cached[1]
    if config is None:
        redactor = Redactor()
    else:
        keys = config.get("redaction.keys")
        redactor = Redactor(
            DEFAULT_SECRET_KEYS if keys is None else keys,
            max_chars=config.get("redaction.max_chars"),
            patterns=config.get("redaction.patterns"),
        )
    _for_config = (config, redactor)
    return redactor


def redacted_message(text: str, config: Any = None) -> str:
    """Free text about how something ended (an exception's message, a stop's ``detail``) as it may leave
    the process, whatever ``store_args`` says: code often builds it from values (``run.stop("error",
    f"CRM refused {email}: {exc}")``). Redacted before it is cut to ``redaction.max_chars``, so that a
    secret across the cut is masked whole."""
    redactor = for_config(config)
    return redactor.redact_text(text[: redactor.max_chars + CUT_SLACK])[: redactor.max_chars]


def error_text(exc: BaseException, config: Any = None) -> str:
    """``Class: message`` of an exception for agent-otel's own log lines, the message redacted as on a span:
    what fails while agent-otel handles a tool's result, a request or an argument often quotes the value
    (``invalid literal for int() with base 10: 'sk-...'``, a ``KeyError`` of an e-mail, an exception whose
    ``__str__`` fails while rendering its data), and logs leave the process too (a log shipper, an
    OpenTelemetry logging handler)."""
    return f"{type(exc).__name__}: {redacted_message(_message(exc), config)}"


def exception_attributes(exc: BaseException, config: Any = None) -> dict[str, str]:
    """The attributes of OpenTelemetry's ``exception`` span event, with nothing raw in them by default:
    the class, the message through the redactor, and the stack trace per ``redaction.stacktrace``
    (``redacted``: through the redactor; ``off``: none; ``raw``: as Python formats it, opt-in)."""
    redactor = for_config(config)
    kind = type(exc)
    module = getattr(kind, "__module__", "")
    name = f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__
    attributes = {"exception.type": name, "exception.message": redacted_message(_message(exc), config)}
    mode = _stack_mode(config)
    if mode != "off":
        try:
            stack = "".join(traceback.format_exception(exc))[-(_STACKTRACE_CHARS + CUT_SLACK) :]
        except Exception:
            stack = ""
        # Redacted before it is cut, as values are (CUT_SLACK): a secret across the cut is seen whole.
        attributes["exception.stacktrace"] = _stack(stack, mode, redactor)[-_STACKTRACE_CHARS:]
    return attributes


def _stack_mode(config: Any) -> str:
    return str(config.get("redaction.stacktrace")) if config is not None else "redacted"


def _stack(stack: Any, mode: str, redactor: Redactor) -> Any:
    """A stack trace as ``redaction.stacktrace`` (``mode``, not ``off``) has it leave the process."""
    return stack if mode == "raw" else _redacted_value(redactor, stack)


def record_exception(span: Any, exc: BaseException, config: Any = None) -> str:
    """``span.record_exception(exc)`` without the raw message; returns the redacted message, for the
    span's status description."""
    attributes = exception_attributes(exc, config)
    span.add_event("exception", attributes)
    return attributes["exception.message"]


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ raises
        return ""


# --- other libraries' spans ------------------------------------------------------------------------------

#: Attributes where libraries put prompts, answers and tool arguments and results when their own content
#: capture is on (the GenAI conventions', their older indexed forms, OpenInference's).
LIBRARY_CONTENT_KEYS = frozenset(
    {
        c.GEN_AI_INPUT_MESSAGES,
        c.GEN_AI_OUTPUT_MESSAGES,
        "gen_ai.system_instructions",
        c.GEN_AI_TOOL_CALL_ARGUMENTS,
        c.GEN_AI_TOOL_CALL_RESULT,
        "gen_ai.prompt",
        "gen_ai.completion",
        "input.value",
        "output.value",
    }
)
LIBRARY_CONTENT_PREFIXES = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
)


#: Attributes of another library's GenAI span that name or identify something and never hold content: left
#: as written (agent-otel's own spans carry them raw too, so that they join). Every other string is
#: redacted, since libraries also put content under names of their own (PydanticAI's
#: ``pydantic_ai.all_messages`` and ``final_result``, Google ADK's ``gcp.vertex.agent.llm_request`` and
#: ``tool_call_args``) that no list of content names keeps up with.
LIBRARY_IDENTITY_KEYS = frozenset(
    {
        c.GEN_AI_OPERATION_NAME,
        c.GEN_AI_PROVIDER_NAME,
        "gen_ai.system",
        c.GEN_AI_REQUEST_MODEL,
        c.GEN_AI_RESPONSE_MODEL,
        c.GEN_AI_RESPONSE_ID,
        c.GEN_AI_RESPONSE_FINISH_REASONS,
        c.GEN_AI_TOOL_NAME,
        c.GEN_AI_TOOL_CALL_ID,
        c.GEN_AI_TOOL_TYPE,
        "gen_ai.tool.description",  # the tools the developer wrote, not what the model or a user said
        "gen_ai.tool.definitions",
        c.GEN_AI_AGENT_NAME,
        "gen_ai.agent.id",
        c.GEN_AI_CONVERSATION_ID,
        c.ERROR_TYPE,
        "server.address",
        "openinference.span.kind",
    }
)
#: A span with an attribute of one of these prefixes (or a content attribute) is a GenAI span.
_GENAI_PREFIXES = ("gen_ai.", "openinference.")


def _content_key(key: str) -> bool:
    return key in LIBRARY_CONTENT_KEYS or key.startswith(LIBRARY_CONTENT_PREFIXES)


def _redacted_key(key: str, value: Any) -> bool:
    """Whether the attribute ``key`` of another library's GenAI span goes through the redactor: every
    string (or sequence of strings) but agent-otel's own ``agent.*`` (hashes and ids) and the names and
    ids of ``LIBRARY_IDENTITY_KEYS``."""
    if key in LIBRARY_IDENTITY_KEYS or key.startswith("agent."):
        return False
    if isinstance(value, str):
        return True
    return isinstance(value, (list, tuple)) and any(isinstance(v, str) for v in value)


def _redacted_value(redactor: Redactor, value: Any) -> Any:
    if isinstance(value, str):
        return redactor.redact_text(value)
    if isinstance(value, (list, tuple)):
        return tuple(redactor.redact_text(v) if isinstance(v, str) else v for v in value)
    return value


def library_span_scrubber(config: Any, own_scope: str) -> Callable[[list[Any]], list[Any]] | None:
    """What export does to spans other libraries made (None: nothing, ``redaction.library_content: raw``).

    A library whose content capture is on (Mistral's SDK, AG2's middleware, a framework's instrumentation)
    writes prompts, answers, tool arguments and results, and the text of its exceptions, onto its spans as
    they are, under the conventions' names and under names of their own. agent-otel's own spans never
    carry raw values, and the exporters agent-otel runs apply the same redactor to every string attribute
    of other libraries' GenAI spans (one with a ``gen_ai.*`` or ``openinference.*`` attribute or one of
    ``LIBRARY_CONTENT_KEYS``) but their names and ids (``LIBRARY_IDENTITY_KEYS``, agent-otel's ``agent.*``),
    on the export thread (a copy of the span: the application's own processors see it unchanged). Their
    events (content events: ``gen_ai.*``, Strands' ``memory.content``...) have every string masked;
    ``exception`` events their message, and their stack trace as ``redaction.stacktrace`` says; the span's
    status description too. Other spans (the application's own) are left to the collector's redaction.
    """
    mode = config.get("redaction.library_content") if config is not None else "redacted"
    if mode == "raw":
        return None
    redactor = for_config(config)
    stack_mode = _stack_mode(config)

    def scrub_event(event: Any) -> Any:
        attributes = event.attributes or {}
        if event.name == "exception":
            changed = dict(attributes)
            if "exception.message" in changed:
                changed["exception.message"] = _redacted_value(redactor, changed["exception.message"])
            stack = changed.pop("exception.stacktrace", None)
            if stack is not None and stack_mode != "off":
                changed["exception.stacktrace"] = _stack(stack, stack_mode, redactor)
        elif not event.name.startswith("agent."):  # content events, whatever their name
            changed = {k: _redacted_value(redactor, v) for k, v in attributes.items()}
        else:  # agent-otel's own (agent.stop, agent.guard on a span it adopted): nothing raw in them
            return event
        from opentelemetry.sdk.trace import Event

        return Event(event.name, changed, event.timestamp)

    def scrub(span: Any) -> Any:
        scope = span.instrumentation_scope
        if scope is None or scope.name == own_scope:
            return span
        attributes = span.attributes or {}
        if not any(k.startswith(_GENAI_PREFIXES) or _content_key(k) for k in attributes):
            return span  # not a GenAI span: the application's own, left to the collector's redaction
        keys = [k for k, v in attributes.items() if _redacted_key(k, v)]
        # A copy only where the redactor changed something: most strings of a span (a model name, a
        # finish reason, an id a library names its own way) come back as they were.
        changed: dict[str, Any] = {}
        for key in keys:
            value = attributes[key]
            masked = _redacted_value(redactor, value)
            if masked != (tuple(value) if isinstance(value, list) else value):
                changed[key] = masked
        events = span.events
        event_hit = any(not e.name.startswith("agent.") for e in events)
        description = span.status.description
        if not changed and not event_hit and not description:
            return span
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import Status

        new_attributes = {**attributes, **changed}
        status = span.status
        if description:
            status = Status(status.status_code, redactor.redact_text(description))
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=new_attributes,
            events=[scrub_event(e) for e in events] if event_hit else events,
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=scope,
        )

    # The scope object of agent-otel's own spans, once seen: they all share their tracer's, so one identity
    # check (not two SDK properties and a string comparison) passes each of them, nearly every span.
    own: list[Any] = [None]

    def scrub_all(spans: list[Any]) -> list[Any]:
        known = own[0]
        scrubbed = spans
        for i, span in enumerate(spans):
            scope = span.instrumentation_scope
            if scope is known and known is not None:
                continue
            if scope is not None and scope.name == own_scope:
                own[0] = known = scope
                continue
            new = scrub(span)
            if new is not span:
                if scrubbed is spans:
                    scrubbed = list(spans)
                scrubbed[i] = new
        return scrubbed

    return scrub_all

"""The AWS event stream encoding (application/vnd.amazon.eventstream), for a fake Bedrock runtime.

A message is: total length and headers length (4 bytes each, big-endian), the CRC32 of those 8 bytes, the
headers (name length, name, type 7 = string, value length, value), the payload, and the CRC32 of all that
precedes it. Bedrock's ConverseStream sends one event per message, named by its ``:event-type`` header,
with the event's members as the JSON payload; InvokeModelWithResponseStream sends ``chunk`` events whose
payload is ``{"bytes": base64(model JSON)}``. botocore's own parser decodes what this encodes.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value


def message(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return head + struct.pack(">I", zlib.crc32(head))


def event(event_type: str, body: Any) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return message(headers, json.dumps(body).encode())


def exception(exception_type: str, text: str) -> bytes:
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return message(headers, json.dumps({"message": text}).encode())


def chunk(body: Any) -> bytes:
    """One InvokeModelWithResponseStream chunk carrying a model-family JSON body."""
    return event("chunk", {"bytes": base64.b64encode(json.dumps(body).encode()).decode()})


def stream(*events: bytes) -> bytes:
    return b"".join(events)

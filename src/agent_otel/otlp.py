"""Sending spans to an OTLP collector as encoded requests, and telling "not now" from "never".

Why agent-otel sends spans itself instead of through the SDK's ``OTLPSpanExporter``:

* The exporter takes live span objects and encodes them again on every attempt. Spans that wait for a
  collector are better kept *encoded*: an OTLP protobuf request is ~8x smaller than the span objects
  (~380 bytes against ~2.9 KB for a tool span) and is one ``bytes`` object the garbage collector never
  walks, where tens of thousands of span objects made its pauses last hundreds of milliseconds.
* The exporter reports only SUCCESS or FAILURE. A batch the collector rejects for good (gRPC
  INVALID_ARGUMENT, HTTP 400) must be dropped and counted, one it refuses for now (UNAVAILABLE, 503, 429)
  kept and resent, and one that is too large (gRPC RESOURCE_EXHAUSTED "larger than max", HTTP 413) split:
  resending any of them unchanged forever blocks every span behind it.
* Requests are split by encoded size (``exporter.max_request_mb``, 4 MiB: the collector's gRPC default),
  which a batch size counted in spans cannot guarantee.

The requests go out over grpcio or requests (both already required by the OTLP exporters), honouring the
same variables the exporters read: ``OTEL_EXPORTER_OTLP_[TRACES_]HEADERS``, ``..._COMPRESSION``,
``..._CERTIFICATE``, ``..._CLIENT_KEY``, ``..._CLIENT_CERTIFICATE``. Metrics still use the SDK's exporter.

:class:`OTLPTransport` is what :class:`agent_otel.export.BufferedSpanProcessor` sends through: it turns
spans into :class:`Batch` es of encoded requests and sends them with a :class:`GrpcSender` or
:class:`HttpSender`.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlparse

from agent_otel import green
from agent_otel.hashing import safe_int, safe_text

logger = logging.getLogger("agent_otel")

TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

# OTLP/gRPC: these codes mean "try again later" (the OTLP specification's list). RESOURCE_EXHAUSTED is
# retryable too unless it says the message was too large, which no retry will change.
_GRPC_RETRYABLE = (
    "CANCELLED",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNAVAILABLE",
    "DATA_LOSS",
)
_HTTP_RETRYABLE = (408, 429)
FORK_CANCELLED = "cancelled for a fork"  # Reply.detail of a call ended by GrpcSender.cancel


class Outcome(Enum):
    SENT = "sent"
    RETRY = "retry"  # refused for now: keep the request and send it again later
    REJECTED = "rejected"  # refused for good: drop it and count it
    TOO_LARGE = "too_large"  # refused for its size: split it


@dataclass(frozen=True, slots=True)
class Reply:
    outcome: Outcome
    detail: str = ""
    retry_after_s: float | None = None  # the collector's own hint (gRPC RetryInfo, HTTP Retry-After)
    rejected: int = 0  # spans of an accepted request the collector still rejected (partial success)


@dataclass(slots=True)
class Batch:
    """Spans on their way to one exporter: an encoded OTLP request, or span objects for an exporter the
    application passed in. ``size`` is what the batch costs in the retry buffer, in bytes."""

    payload: Any
    count: int
    size: int
    failed_at: float = 0.0  # monotonic time of its first refusal (0: never refused)
    strikes: int = 0  # refusals while the collector took other requests


# --- encoding -------------------------------------------------------------------------------------------


def encode(spans: Sequence[Any], max_bytes: int) -> tuple[list[tuple[bytes, int]], int]:
    """OTLP requests of at most ``max_bytes`` each, as ``(payload, span count)``, and the number of spans
    that alone exceed ``max_bytes`` (left out: no collector with that limit would take them)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return split(encode_spans(spans), max_bytes)


def encodable_span(span: Any) -> Any:
    """A copy of ``span`` whose text every UTF-8 encoder takes: lone surrogates (``os.fsdecode`` of a
    file name that is not UTF-8, a header decoded with ``surrogateescape``) in its name, attributes,
    events, links, status or resource become their backslash escape, as in the run store. The encoder
    refused such a span, and with it the whole request it was in: the other runs' spans too."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import Link, Status

    status = span.status
    if status is not None and status.description:
        status = Status(status.status_code, safe_text(status.description))
    resource = span.resource
    if resource is not None:
        resource = Resource(encodable_attributes(resource.attributes), resource.schema_url)
    events = [Event(safe_text(e.name), encodable_attributes(e.attributes), e.timestamp) for e in span.events]
    return ReadableSpan(
        name=safe_text(span.name),
        context=span.context,
        parent=span.parent,
        resource=resource,
        attributes=encodable_attributes(span.attributes),
        events=events,
        links=[Link(link.context, encodable_attributes(link.attributes)) for link in span.links],
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def encodable_attributes(attributes: Any) -> dict[str, Any] | None:
    """``attributes`` with every value OTLP can carry (see _encodable_value)."""
    if attributes is None:
        return None
    return {safe_text(key): _encodable_value(value) for key, value in attributes.items()}


def _encodable_value(value: Any) -> Any:
    """Text through safe_text; an int beyond 64 bits (which OTLP cannot hold) as its decimal text."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return safe_int(value)
    if isinstance(value, tuple | list):
        return tuple(_encodable_value(v) for v in value)
    return value


def split(request: Any, max_bytes: int) -> tuple[list[tuple[bytes, int]], int]:
    """Pack the spans of an ``ExportTraceServiceRequest`` into requests of at most ``max_bytes``."""
    if request.ByteSize() <= max_bytes:
        count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        return [(request.SerializeToString(), count)], 0
    out: list[tuple[bytes, int]] = []
    too_large = 0
    current = type(request)()
    size = count = 0
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            # What the enclosing ResourceSpans/ScopeSpans add to a request (tags and lengths: <= 12 bytes
            # each), paid again in every request they appear in.
            envelope = rs.resource.ByteSize() + ss.scope.ByteSize() + len(rs.schema_url) + len(ss.schema_url)
            envelope += 32
            target = None
            for span in ss.spans:
                span_size = span.ByteSize() + 6
                if span_size + envelope > max_bytes:
                    too_large += 1
                    continue
                if count and size + span_size + (envelope if target is None else 0) > max_bytes:
                    out.append((current.SerializeToString(), count))
                    current, size, count, target = type(request)(), 0, 0, None
                if target is None:
                    new_rs = current.resource_spans.add()
                    new_rs.resource.CopyFrom(rs.resource)
                    new_rs.schema_url = rs.schema_url
                    target = new_rs.scope_spans.add()
                    target.scope.CopyFrom(ss.scope)
                    target.schema_url = ss.schema_url
                    size += envelope
                target.spans.append(span)
                size += span_size
                count += 1
    if count:
        out.append((current.SerializeToString(), count))
    return out, too_large


def resplit(payload: bytes, max_bytes: int) -> tuple[list[tuple[bytes, int]], int]:
    """Split an encoded request the collector found too large."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    return split(ExportTraceServiceRequest.FromString(payload), max_bytes)


# --- senders --------------------------------------------------------------------------------------------


def _env(name: str) -> str | None:
    return os.environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or os.environ.get(f"OTEL_EXPORTER_OTLP_{name}")


def _headers() -> dict[str, str]:
    from opentelemetry.util.re import parse_env_headers

    return {k.lower(): v for k, v in parse_env_headers(_env("HEADERS") or "", liberal=True).items()}


def _compression() -> str:
    """gzip, deflate or none: config.load has already refused anything else, naming the variable."""
    from agent_otel.config import compression

    return compression(os.environ, "traces") or "none"


def _read(name: str) -> bytes | None:
    """The file ``OTEL_EXPORTER_OTLP_[TRACES_]<name>`` names. Read when the channel is made, not in
    ``setup()``: a path that cannot be read fails the export (one warning naming it, as over HTTP), it
    does not raise into the application that called ``setup()``."""
    path = _env(name)
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise OSError(f"{path} (OTEL_EXPORTER_OTLP_{name}) cannot be read: {exc.strerror or exc}") from None


def _partial_success(response: Any) -> tuple[int, str]:
    partial = getattr(response, "partial_success", None)
    if partial is None:
        return 0, ""
    return int(partial.rejected_spans), partial.error_message


class GrpcSender:
    """One unary OTLP/gRPC call per request; the bytes go on the wire as they are."""

    def __init__(self, endpoint: str, timeout_s: float) -> None:
        import grpc

        self._grpc = grpc
        parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        self._target = parsed.netloc or endpoint
        self._secure = parsed.scheme == "https"
        self._timeout = timeout_s
        self._metadata = tuple(_headers().items())
        self._compression = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}.get(
            _compression(), grpc.Compression.NoCompression
        )
        self._channel: Any = None
        self._call: Any = None
        self._cancels = 0

    def forked(self, idle: bool) -> None:
        """In a forked child: the parent's channel is not the child's (gRPC closes it there when its fork
        support is on, and it is the parent's connection otherwise); the next send opens a new one. The
        old one is kept, never closed nor freed: with gRPC unusable here (:data:`grpc_blocked`) that
        would call into gRPC, and closing it there broke the parent's own channels."""
        if self._channel is not None:
            _inherited.append(self._channel)
        self._channel = self._call = None

    def cancel(self) -> None:
        """Before a fork, when a call has been in flight too long (see export._before_fork): closing the
        channel ends the call at once (CANCELLED: the batch is kept and sent again, on a new channel)."""
        self._cancels += 1
        channel, self._channel, self._call = self._channel, None, None
        if channel is not None:
            try:
                channel.close()
            except Exception as exc:
                logger.debug("agent-otel: closing the gRPC channel failed: %s", exc)

    def _connect(self) -> Any:
        if self._call is None:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

            from agent_otel._version import __version__

            # Before the channel, not in __init__: a worker forked from a master that ran setup() (gunicorn
            # --preload) is patched by gevent after the fork, and opens its channel then.
            green.prepare_grpc()
            options = [("grpc.primary_user_agent", f"agent-otel/{__version__}")]
            grpc = self._grpc
            if self._secure:
                credentials = grpc.ssl_channel_credentials(
                    _read("CERTIFICATE"), _read("CLIENT_KEY"), _read("CLIENT_CERTIFICATE")
                )
                channel = grpc.secure_channel(self._target, credentials, options, self._compression)
            else:
                channel = grpc.insecure_channel(self._target, options, self._compression)
            self._channel = channel
            self._call = channel.unary_unary(
                TRACES_METHOD,
                request_serializer=None,  # the payload is already the encoded request
                response_deserializer=ExportTraceServiceResponse.FromString,
            )
        return self._call

    def send(self, payload: bytes) -> Reply:
        if grpc_blocked is not None:
            return Reply(Outcome.REJECTED, grpc_blocked)
        grpc = self._grpc
        cancels = self._cancels
        try:
            response = self._connect()(payload, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            name = getattr(code, "name", "UNKNOWN")
            if name == "CANCELLED" and self._cancels != cancels:
                return Reply(Outcome.RETRY, FORK_CANCELLED)
            details = (err.details() if hasattr(err, "details") else None) or ""
            detail = f"gRPC {name}: {details}".rstrip(": ")
            if name == "UNAVAILABLE":
                # A new channel connects at once when the collector is back; the old one may sit in
                # gRPC's reconnect back-off (up to two minutes) first.
                self.close()
            if name == "RESOURCE_EXHAUSTED" and "larger than max" in details.lower():
                return Reply(Outcome.TOO_LARGE, detail)
            if name in _GRPC_RETRYABLE:
                return Reply(Outcome.RETRY, detail, _retry_info(err))
            return Reply(Outcome.REJECTED, detail)
        rejected, message = _partial_success(response)
        return Reply(Outcome.SENT, message, rejected=rejected)

    def close(self) -> None:
        channel, self._channel, self._call = self._channel, None, None
        if grpc_blocked is not None:
            return  # not even closing: see forked()
        if channel is not None:
            try:
                channel.close()
            except Exception as exc:
                logger.debug("agent-otel: closing the gRPC channel failed: %s", exc)


# --- forked children ------------------------------------------------------------------------------------

# Why gRPC must not be used in this process (a forked child), or None. Set by agent_otel.export's fork hook
# in a child of a process that had imported grpc, when gRPC's fork support is off or a gRPC call of
# agent-otel was still in flight at the fork. Either way gRPC's state in the child is a copy of the
# parent's mid-use (its threads did not survive): a call in such a child hung for the whole timeout, then
# the child aborted in gRPC's code (SIGABRT), and the parent's own calls timed out from the fork on.
grpc_blocked: str | None = None
_inherited: list[Any] = []  # objects of the parent's gRPC and HTTP connections: never used, never freed


def keep_inherited(obj: Any) -> None:
    """Keep ``obj`` (a connection object of the parent, in a forked child) for the life of the process:
    never used again, and never freed, since freeing it would close it, which may call into gRPC or take
    a lock the parent's thread held at the fork."""
    _inherited.append(obj)


def grpc_fork_support_off() -> bool:
    """``GRPC_ENABLE_FORK_SUPPORT`` set to false. Unset, grpcio's core handles a fork of a process whose
    gRPC threads are idle (its Python layer reports fork support off, yet a child's calls work)."""
    return os.environ.get("GRPC_ENABLE_FORK_SUPPORT", "").strip().lower() in ("0", "false", "no", "off")


def block_grpc(reason: str) -> None:
    global grpc_blocked
    grpc_blocked = reason


def renew_connections(session: Any, idle: bool) -> None:
    """Give a forked child's HTTP client (a ``requests.Session``, a urllib3 ``PoolManager``) pools of its
    own. The kept-alive connections in the pools are the parent's sockets: a child's request and the
    parent's went down the same connection and each read the other's reply or none (a pre-fork master
    lost its last metric batches to read timeouts).

    ``idle``: no request of agent-otel was in flight at the fork (its send lock was free), so no thread
    of the parent held the pools' locks: they are closed, which closes the child's copies of the sockets
    only (a socket shared with another process stays open for it). Otherwise the pools' locks may be
    held by a thread that does not exist in the child: new pools replace them, the old ones are kept
    untouched."""
    adapters = getattr(session, "adapters", None)
    try:
        if idle:
            if hasattr(session, "close"):
                session.close()
            elif hasattr(session, "clear"):
                session.clear()
            return
        if isinstance(adapters, dict):  # requests
            for adapter in adapters.values():
                _inherited.append((adapter.poolmanager, dict(getattr(adapter, "proxy_manager", {}))))
                pools = (adapter._pool_connections, adapter._pool_maxsize, adapter._pool_block)
                adapter.init_poolmanager(*pools)
                adapter.proxy_manager = {}
        elif hasattr(session, "pools") and hasattr(session, "connection_pool_kw"):  # urllib3.PoolManager
            fresh = type(session)(headers=session.headers, **session.connection_pool_kw)
            _inherited.append(session.pools)
            session.pools = fresh.pools
    except Exception as exc:  # an HTTP client of another shape: it keeps what it has
        logger.debug("agent-otel: cannot renew HTTP connections after a fork: %s", exc)


def _retry_info(err: Any) -> float | None:
    try:
        trailers = dict(err.trailing_metadata() or ())
        raw = trailers.get("google.rpc.retryinfo-bin")
        if raw is None:
            return None
        from google.rpc.error_details_pb2 import RetryInfo

        info = RetryInfo.FromString(raw)
        return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    except Exception:
        return None


class HttpSender:
    """One POST of ``application/x-protobuf`` per request."""

    def __init__(self, url: str, timeout_s: float) -> None:
        import requests

        self._url = url
        self._timeout = timeout_s
        self._session = requests.Session()
        self._headers = {"content-type": "application/x-protobuf", **_headers()}
        self._compression = _compression()
        if self._compression != "none":
            self._headers["content-encoding"] = self._compression
        cert, key = _env("CLIENT_CERTIFICATE"), _env("CLIENT_KEY")
        self._verify: bool | str = _env("CERTIFICATE") or True
        self._cert: Any = (cert, key) if cert and key else cert

    def send(self, payload: bytes) -> Reply:
        import requests

        body = payload
        if self._compression == "gzip":
            body = gzip.compress(payload)
        elif self._compression == "deflate":
            body = zlib.compress(payload)
        try:
            response = self._session.post(
                self._url,
                data=body,
                headers=self._headers,
                timeout=self._timeout,
                verify=self._verify,
                cert=self._cert,
            )
        except requests.RequestException as exc:
            return Reply(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

            try:
                parsed = ExportTraceServiceResponse.FromString(response.content)
            except Exception:
                return Reply(Outcome.SENT)
            rejected, message = _partial_success(parsed)
            return Reply(Outcome.SENT, message, rejected=rejected)
        detail = f"HTTP {status}: {response.text[:200]}".rstrip(": ")
        if status == 413:
            return Reply(Outcome.TOO_LARGE, detail)
        if status in _HTTP_RETRYABLE or status >= 500:
            return Reply(Outcome.RETRY, detail, _retry_after(response.headers.get("retry-after")))
        return Reply(Outcome.REJECTED, detail)

    def forked(self, idle: bool) -> None:
        """In a forked child: connections of its own (see :func:`renew_connections`)."""
        renew_connections(self._session, idle)

    def close(self) -> None:
        self._session.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own back-off


def sender(protocol: str, url: str, timeout_s: float) -> GrpcSender | HttpSender:
    """The sender for ``protocol`` (``grpc`` or ``http/protobuf``); ``url`` as _signal_endpoint gives it."""
    if protocol == "grpc":
        return GrpcSender(url, timeout_s)
    return HttpSender(url, timeout_s)


# --- the transport the span processor uses ------------------------------------------------------------


_ENVELOPE_BYTES = 64  # a retained request's own object and list slot, on top of its payload


class OTLPTransport:
    """OTLP over gRPC or HTTP: batches are encoded requests of at most ``max_request_bytes``."""

    name = "OTLP"

    def __init__(self, sender: Any, max_request_bytes: int) -> None:
        self._sender = sender
        self.max_request_bytes = max_request_bytes
        self._bytes_per_span = 400.0  # running mean of the encoded size; refined by every encoding
        self._warned_size = False

    def _batches(self, encoded: list[tuple[bytes, int]]) -> list[Batch]:
        batches = [Batch(payload, count, len(payload) + _ENVELOPE_BYTES) for payload, count in encoded]
        spans = sum(b.count for b in batches)
        if spans:
            sample = sum(len(b.payload) for b in batches) / spans
            self._bytes_per_span = 0.8 * self._bytes_per_span + 0.2 * sample
        return batches

    def prepare(self, spans: list[Any]) -> tuple[list[Batch], int]:
        encoded, too_large = encode(spans, self.max_request_bytes)
        return self._batches(encoded), too_large

    def send(self, batch: Batch) -> Reply:
        return self._sender.send(batch.payload)

    def split(self, batch: Batch) -> tuple[list[Batch], int] | None:
        if batch.count <= 1:
            return None
        # The collector takes less than we thought: from now on send requests of at most half this one.
        limit = max(len(batch.payload) // 2, 1024)
        if limit < self.max_request_bytes:
            self.max_request_bytes = limit
        if not self._warned_size:
            self._warned_size = True
            logger.warning(
                "agent-otel: the collector refused a span request of %d bytes as too large; sending "
                "requests of at most %d bytes (raise the collector's max_recv_msg_size_mib, or lower "
                "exporter.max_request_mb)",
                len(batch.payload),
                self.max_request_bytes,
            )
        encoded, too_large = resplit(batch.payload, self.max_request_bytes)
        return self._batches(encoded), too_large

    def estimate(self, spans: Sequence[Any]) -> int:
        return int(self._bytes_per_span * len(spans)) + _ENVELOPE_BYTES

    @property
    def grpc(self) -> bool:
        return isinstance(self._sender, GrpcSender)

    def forked(self, idle: bool) -> None:
        self._sender.forked(idle)

    def cancel(self) -> None:
        cancel = getattr(self._sender, "cancel", None)
        if cancel is not None:
            cancel()

    def shutdown(self) -> None:
        self._sender.close()

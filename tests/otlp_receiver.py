"""A real OTLP/gRPC receiver on 127.0.0.1 for tests that need a collector that can go down and come back.

It speaks the actual OTLP protocol (the opentelemetry-proto service definitions over grpcio), so the
SDK's real OTLP exporter talks to it exactly as it would to a collector. Like a collector it can refuse:
``max_message_bytes`` is gRPC's own receive limit (the collector's ``max_recv_msg_size_mib``, 4 MiB by
default, answered with RESOURCE_EXHAUSTED by grpcio itself), and ``answer`` decides per request whether to
take it or to answer with a gRPC status (INVALID_ARGUMENT, UNAVAILABLE, ...).
"""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_spans(request: Any) -> list[Any]:
    return [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


class OTLPReceiver:
    def __init__(
        self,
        port: int | None = None,
        *,
        max_message_bytes: int | None = None,
        answer: Callable[[list[Any]], grpc.StatusCode | None] | None = None,
    ) -> None:
        """``answer(spans)`` returns None to accept a request, or the status code to refuse it with."""
        self.port = port or free_port()
        self.spans: list[Any] = []
        self.metric_requests = 0
        self.metric_batches: list[Any] = []  # the ExportMetricsServiceRequests, in arrival order
        self.requests: list[tuple[int, int, str]] = []  # (size in bytes, spans, status) of each trace request
        self.headers: dict[str, str] = {}  # the gRPC metadata of the last trace request
        self._max_message_bytes = max_message_bytes
        self._answer = answer
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        receiver = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                spans = request_spans(request)
                code = receiver._answer(spans) if receiver._answer is not None else None
                with receiver._lock:
                    receiver.headers = {k: str(v) for k, v in context.invocation_metadata()}
                    receiver.requests.append((request.ByteSize(), len(spans), code.name if code else "OK"))
                    if code is None:
                        receiver.spans.extend(spans)
                if code is not None:
                    context.abort(code, f"refused by the test receiver ({code.name})")
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):
                with receiver._lock:
                    receiver.metric_requests += 1
                    receiver.metric_batches.append(request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        self._traces = Traces()
        self._metrics = Metrics()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OTLPReceiver:
        options = []
        if self._max_message_bytes is not None:
            options.append(("grpc.max_receive_message_length", self._max_message_bytes))
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self._traces, server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self._metrics, server)
        server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=0).wait(5)
            self._server = None

    def span_names(self) -> list[str]:
        with self._lock:
            return [s.name for s in self.spans]

    def count(self) -> int:
        with self._lock:
            return len(self.spans)

    def span_ids(self) -> set[tuple[bytes, bytes]]:
        """(trace id, span id) of every span taken: a span resent after a lost reply counts once here."""
        with self._lock:
            return {(s.trace_id, s.span_id) for s in self.spans}

    def wait_for(self, n: int, timeout_s: float = 20.0) -> int:
        """Poll until ``n`` spans arrived (or the timeout); the count reached."""
        import time

        deadline = time.monotonic() + timeout_s
        while self.count() < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.count()


def stop_counts(receiver: OTLPReceiver) -> dict[str, int]:
    """The last agent_stop_total{stop_reason="completed"} each process (service.instance.id) exported."""
    last: dict[str, int] = {}
    for request in receiver.metric_batches:
        for rm in request.resource_metrics:
            resource = {a.key: a.value.string_value for a in rm.resource.attributes}
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name != "agent.stop":
                        continue
                    for point in metric.sum.data_points:
                        attributes = {a.key: a.value.string_value for a in point.attributes}
                        if attributes.get("stop_reason") == "completed":
                            last[resource["service.instance.id"]] = point.as_int
    return last


class Blackhole:
    """A TCP port that accepts connections and never answers: the collector that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except OSError:
                continue

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop = True
        for conn in self.conns:
            conn.close()
        self.sock.close()


class HTTPReceiver:
    """OTLP/HTTP (protobuf) receiver: POST /v1/traces and /v1/metrics on 127.0.0.1.

    ``answer(spans)`` returns None to accept a trace request, or the HTTP status to refuse it with (400,
    413, 429, 503, ...); ``requests`` lists (size, spans, status) of every trace request. ``metric_status``
    set to an HTTP status refuses metric requests with it (counted in ``metric_refused``) until set back
    to None; ``metric_batches`` holds the accepted ones.
    """

    def __init__(
        self, answer: Callable[[list[Any]], int | None] | None = None, *, keep_alive: bool = False
    ) -> None:
        """``keep_alive``: HTTP/1.1 persistent connections, as a collector keeps them; ``connections``
        then lists the client address of each accepted metric request, in the order of metric_batches."""
        import http.server

        self.spans: list[Any] = []
        self.metric_requests = 0
        self.metric_batches: list[Any] = []  # the ExportMetricsServiceRequests, in arrival order
        self.metric_sizes: list[int] = []  # the bytes of each metric request (uncompressed)
        self.metric_status: int | None = None
        self.metric_refused = 0
        self.requests: list[tuple[int, int, int]] = []
        self.headers: dict[str, str] = {}  # of the last trace request
        self.connections: list[tuple[str, int]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path == "/v1/traces":
                    receiver.headers = {k.lower(): v for k, v in self.headers.items()}
                    request = trace_service_pb2.ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    spans = request_spans(request)
                    status = answer(spans) if answer is not None else None
                    receiver.requests.append((len(body), len(spans), status or 200))
                    if status is not None:
                        self.send_response(status)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    receiver.spans.extend(spans)
                    reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                elif self.path == "/v1/metrics":
                    if (status := receiver.metric_status) is not None:
                        receiver.metric_refused += 1
                        self.send_response(status)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    receiver.metric_requests += 1
                    receiver.metric_sizes.append(len(body))
                    receiver.connections.append(self.client_address)
                    receiver.metric_batches.append(
                        metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
                    )
                    reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

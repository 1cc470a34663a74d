"""Which OTLP endpoint and protocol the configuration means, and whether a local collector answers.

``setup()`` (:mod:`agent_otel.sdk`) exports there; ``agent-otel doctor`` shows the same decision and
probes the endpoint. Kept apart from ``sdk`` because importing that module loads the OpenTelemetry SDK
and the instrumentation core (~100 ms of doctor's ~210 ms of imports, ``python -X importtime``), none of
which doctor needs to say where spans would go. This module imports only the standard library; keep it so.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from agent_otel.config import Config

LOCAL_GRPC_PORT = 4317
LOCAL_HTTP_PORT = 4318
_PROBE_TIMEOUT_S = 0.2


def _probe(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def grpc_available() -> bool:
    """Whether OTLP/gRPC can be used: the ``grpc`` extra (``pip install 'agent-otel[grpc]'``) is installed.

    The base install exports OTLP over http/protobuf only, the OTLP specification's default transport."""
    from importlib.util import find_spec

    try:
        return all(find_spec(name) is not None for name in ("grpc", "opentelemetry.exporter.otlp.proto.grpc"))
    except (ImportError, ValueError):
        return False


_NO_GRPC = (
    "the OTLP/gRPC exporter is not installed (pip install 'agent-otel[grpc]'); or use OTLP/HTTP, which "
    "the base install has: OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and the collector's port 4318"
)


def resolve_otlp(cfg: Config) -> tuple[str, str | None, str]:
    """Decide protocol and endpoint; returns (protocol, endpoint or None, a note saying why).

    Without ``exporter.protocol``: port 4318 means http/protobuf, port 4317 grpc, any other port grpc
    when the ``grpc`` extra is installed and http/protobuf otherwise. gRPC without the extra turns OTLP
    off with a note saying how to fix it, rather than sending HTTP to a gRPC port or raising ImportError.
    """
    endpoint = cfg.get("exporter.endpoint")
    protocol = cfg.get("exporter.protocol")
    grpc = grpc_available()
    if endpoint:
        why = f"exporter.protocol from {cfg.source('exporter.protocol')}"
        if protocol is None:
            port = urlparse(with_scheme(endpoint)).port
            if port == LOCAL_HTTP_PORT or (port != LOCAL_GRPC_PORT and not grpc):
                protocol = "http/protobuf"
            else:
                protocol, why = "grpc", f"port {port}"
        if protocol == "grpc" and not grpc:
            return protocol, None, f"endpoint {endpoint} means OTLP/gRPC ({why}), but {_NO_GRPC}"
        return protocol, endpoint, f"configured ({cfg.source('exporter.endpoint')})"
    default = protocol or ("grpc" if grpc else "http/protobuf")
    if protocol == "grpc" and not grpc:
        return (
            protocol,
            None,
            f"exporter.protocol is grpc (from {cfg.source('exporter.protocol')}), but {_NO_GRPC}",
        )
    if not cfg.get("exporter.probe_local"):
        return default, None, "no endpoint configured and exporter.probe_local is false"
    if protocol != "http/protobuf" and grpc and _probe(LOCAL_GRPC_PORT):
        return "grpc", f"http://127.0.0.1:{LOCAL_GRPC_PORT}", "found a collector on localhost:4317"
    if protocol != "grpc" and _probe(LOCAL_HTTP_PORT):
        return "http/protobuf", f"http://127.0.0.1:{LOCAL_HTTP_PORT}", "found a collector on localhost:4318"
    if not grpc and protocol is None and _probe(LOCAL_GRPC_PORT):
        return default, None, f"a collector answers on localhost:4317 (OTLP/gRPC), but {_NO_GRPC}"
    return (
        default,
        None,
        (
            "no endpoint configured and no collector answers on localhost:4317 or :4318 "
            "(set OTEL_EXPORTER_OTLP_ENDPOINT, or start the local stack: `agent-otel stack init DIR`)"
        ),
    )


def with_scheme(endpoint: str) -> str:
    return endpoint if "://" in endpoint else f"http://{endpoint}"

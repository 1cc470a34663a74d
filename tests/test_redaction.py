"""Privacy by default: raw args never leave; with store_args they leave redacted and truncated."""

from __future__ import annotations

import json
import logging

import pytest

import agent_otel
from agent_otel import conventions as c
from agent_otel.redaction import Redactor

SECRETS = {
    "to": "alice.smith@example.com",
    "phone": "+1 (415) 555-0134",
    "card": "4111 1111 1111 1111",
    "headers": {"Authorization": "Bearer abcdefghijklmnop123456"},
    "note": "use key sk-proj-AbCdEfGhIjKlMnOpQrStUv and AKIAABCDEFGHIJKLMNOP",
    "password": "hunter2",
    "db": {"api_key": "plain-looking-value"},
}
RAW_VALUES = [
    "alice.smith@example.com",
    "555-0134",
    "4111 1111 1111 1111",
    "abcdefghijklmnop123456",
    "sk-proj-AbCdEfGhIjKlMnOpQrStUv",
    "AKIAABCDEFGHIJKLMNOP",
    "hunter2",
    "plain-looking-value",
]


def test_redactor_masks_every_kind_of_secret():
    out = json.dumps(Redactor().redact(SECRETS))
    for raw in RAW_VALUES:
        assert raw not in out, raw
    red = Redactor().redact(SECRETS)
    assert red["to"] == "[EMAIL]" and red["card"] == "[CARD]" and red["password"] == "[REDACTED]"
    assert red["headers"]["Authorization"] == "[REDACTED]"


def test_redactor_keeps_what_is_not_secret():
    red = Redactor().redact(
        {
            "order_id": "1234567890123456",
            "count": 3,
            "city": "Berlin",
            "year": 2026,
            "url": "https://example.com/orders/12345",
        }
    )
    # 1234567890123456 fails the Luhn check: an order id, not a card number
    assert red == {
        "order_id": "1234567890123456",
        "count": 3,
        "city": "Berlin",
        "year": 2026,
        "url": "https://example.com/orders/12345",
    }


def test_configurable_keys_patterns_and_truncation():
    r = Redactor(secret_keys=["ssn_like"], patterns=[r"TICKET-\d+"], max_chars=40)
    assert r.redact({"ssn_like_field": "x", "password": "kept"}) == {
        "ssn_like_field": "[REDACTED]",
        "password": "kept",
    }
    assert r.redact("see TICKET-991") == "see [REDACTED]"
    copy, text = r.bounded({"blob": "y" * 500})
    # cut before it is redacted, inside the string, with the count of what was cut from it
    kept = len(copy["blob"]) - len("...[truncated 000 chars]")
    assert copy == {"blob": "y" * kept + f"...[truncated {500 - kept} chars]"} and 0 < kept < 40
    assert text == f'{{"blob":"{copy["blob"]}"}}' and r.to_attribute({"blob": "y" * 500}) == text


@pytest.fixture
def store_args_telemetry(telemetry):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    agent_otel.shutdown()  # shuts the fixture's exporter down too: use a new one
    telemetry.exporter = InMemorySpanExporter()
    agent_otel.setup(
        "svc",
        span_exporters=[telemetry.exporter],
        event_sinks=[telemetry.sink],
        store=False,
        instrument=False,
        meter_provider=MeterProvider(shutdown_on_exit=False),
        config={
            "logging": {"events": {"store_args": True}},
            "redaction": {"max_chars": 200},
            "exporter": {"probe_local": False},
        },
    )
    return telemetry


def test_by_default_raw_args_never_leave_the_process(telemetry):
    with agent_otel.run("a") as run:
        run.call_tool("send_email", lambda **kw: "sent to alice.smith@example.com", SECRETS)
    (span,) = telemetry.spans_named("execute_tool")
    dumped = json.dumps(dict(span.attributes)) + json.dumps(telemetry.events())
    for raw in RAW_VALUES + ["hunter2"]:
        assert raw not in dumped
    assert c.GEN_AI_TOOL_CALL_ARGUMENTS not in span.attributes


def test_store_args_attaches_redacted_truncated_args_and_results(store_args_telemetry):
    t = store_args_telemetry
    with agent_otel.run("a") as run:
        run.call_tool("send_email", lambda **kw: {"sent_to": "alice.smith@example.com", "id": 1}, SECRETS)
    (span,) = t.spans_named("execute_tool")
    args = span.attributes[c.GEN_AI_TOOL_CALL_ARGUMENTS]
    result = span.attributes[c.GEN_AI_TOOL_CALL_RESULT]
    assert len(args) <= 200 + len("...[truncated 99999 chars]")
    assert '"password":"[REDACTED]"' in args or "truncated" in args
    assert json.loads(result) == {"sent_to": "[EMAIL]", "id": 1}
    (event,) = t.events("tool_result")
    assert event["args"]["to"] == "[EMAIL]" and event["result"]["sent_to"] == "[EMAIL]"
    dumped = args + result + json.dumps(event)
    for raw in RAW_VALUES:
        assert raw not in dumped, raw


def test_ids_with_dashes_are_not_phone_numbers():
    assert Redactor().redact_text("order O-65143798, ticket T-897186") == "order O-65143798, ticket T-897186"
    assert Redactor().redact_text("call 030 1234567") == "call [PHONE]"


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "access_token",
        "api_token",
        "refreshToken",
        "x-api-key",
        "X-API-KEY",
        "apiKey",
        "APIKey",
        "client_secret",
        "password",
        "db_password",
        "DB_PASSWORD",
        "authorization",
        "Proxy-Authorization",
        "cookie",
        "set-cookie",
        "session",
        "session_token",
        "session_id",  # a session identifier is a credential: whoever holds it is logged in
        "sessionId",
        "accesstoken",  # compounds written without separators end with a configured name
        "jsessionid",
        "aws_secret_access_key",
        "credentials",
    ],
)
def test_secret_keys_are_matched_by_name_segment(key):
    assert Redactor().is_secret_key(key)
    assert Redactor().redact({key: "s3cr3t-value"}) == {key: "[REDACTED]"}


@pytest.mark.parametrize(
    "key",
    [
        "max_tokens",
        "input_tokens",
        "output_tokens",
        "tokens_used",
        "token_count",
        "maxTokens",
        "tokens",
        "session_count",
        "password_min_length",
        "keyboard",
        "city",
    ],
)
def test_counts_and_plurals_are_not_secret_keys(key):
    # `tokens` is not the segment `token`; a count/limit/max/... segment names an amount, not a secret
    assert not Redactor().is_secret_key(key)
    assert Redactor().redact({key: 4096}) == {key: 4096}


def test_llm_usage_survives_next_to_masked_credentials():
    red = Redactor().redact(
        {"usage": {"input_tokens": 812, "output_tokens": 96, "max_tokens": 1024}, "access_token": "abc"}
    )
    assert red == {
        "usage": {"input_tokens": 812, "output_tokens": 96, "max_tokens": 1024},
        "access_token": "[REDACTED]",
    }


def test_user_entries_match_a_segment_run_or_the_whole_key():
    r = Redactor(secret_keys=["ssn_like", "token_count", "pin"])
    assert r.is_secret_key("ssn_like_field") and r.is_secret_key("ssnLike")  # a run of segments
    assert r.is_secret_key("token_count") and r.is_secret_key("tokenCount")  # the whole key wins
    assert r.is_secret_key("card_pin") and r.is_secret_key("PIN")
    # short names only match whole segments: `spin` is not a `pin`; and only configured names count
    assert not r.is_secret_key("spin") and not r.is_secret_key("pin_count")
    assert not r.is_secret_key("password") and not r.is_secret_key("access_token")
    assert not Redactor(secret_keys=[]).is_secret_key("password")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login with password=hunter2 now", "login with password=[REDACTED] now"),
        ('cfg {"api_key": "abc123def456", "region": "eu"}', 'cfg {"api_key": "[REDACTED]", "region": "eu"}'),
        ("x-api-key: 0123456789abcdef0123", "x-api-key: [REDACTED]"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [REDACTED]"),
        ("Authorization: Basic abc", "Authorization: Basic [REDACTED]"),  # too short for the bearer pattern
        ("secret: foo", "secret: [REDACTED]"),
        ("export API_KEY='sk-live-123'", "export API_KEY='[REDACTED]'"),
        ('{\\"client_secret\\": \\"abc\\"}', '{\\"client_secret\\": \\"[REDACTED]\\"}'),  # JSON encoded twice
        ("GET /orders?access_token=abc&page=2", "GET /orders?access_token=[REDACTED]&page=2"),
        ("db.password = s3cr3t; host=db", "db.password = [REDACTED]; host=db"),
        ('password: "a \\" b" rest', 'password: "[REDACTED]" rest'),
        ("session_id: 42, order: 7", "session_id: [REDACTED], order: 7"),
        ('{"password": "hunter2', '{"password": [REDACTED]'),  # a quote that is never closed
        ('{\\"password\\": \\"hunter2', '{\\"password\\": [REDACTED]'),
        # a pair whose key is not secret does not hide the pair in its value
        ("note: password=hunter2 ok", "note: password=[REDACTED] ok"),
    ],
)
def test_secret_key_value_pairs_in_free_text_are_masked(text, expected):
    assert Redactor().redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An object or a list under a secret key, in JSON held in a string (a library's captured messages,
        # a tool call's arguments): only its opening bracket was masked, its contents kept and the JSON
        # broken (`"secret":[REDACTED]"answer":"blue-42"}`).
        (
            '{"user":"bob","secret":{"question":"pet}","answer":"blue-42"},"n":1}',
            '{"user":"bob","secret":"[REDACTED]","n":1}',
        ),
        ('{"credentials": ["bob", "hunter-two"], "n": 1}', '{"credentials": "[REDACTED]", "n": 1}'),
        ('{"password": {"a": "b\\"}"}, "k": 2}', '{"password": "[REDACTED]", "k": 2}'),
        ('x={\\"token\\":{\\"v\\":\\"abc\\"},\\"n\\":1}', 'x={\\"token\\":\\"[REDACTED]\\",\\"n\\":1}'),
        ('{"token": {"a": "cut sho', '{"token": "[REDACTED]"'),  # never closed: to the end
        ("password=[abc] ok", "password=[REDACTED] ok"),
    ],
)
def test_an_object_or_list_under_a_secret_key_in_text_is_masked_whole(text, expected):
    masked = Redactor().redact_text(text)
    assert masked == expected
    if text.startswith("{") and not text.endswith("sho"):
        json.loads(masked)  # still JSON


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens: 1024, token_count=5, tokens_used: 9",
        '{"input_tokens": 812, "order_id": "ord_1a2b3c4d"}',
        "if password == expected",
        "url: https://example.com/token",
        "status: ok",
    ],
)
def test_key_value_pairs_that_are_not_secret_are_kept(text):
    assert Redactor().redact_text(text) == text


def test_free_text_pairs_follow_the_configured_key_names():
    r = Redactor(secret_keys=["pin"])
    assert r.redact_text("pin: 1234, password=hunter2") == "pin: [REDACTED], password=hunter2"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24",
        "2026-11-24T10:15:00Z",
        "2026-11-24T10:15:00+01:00",
        "2026-11-24 10:15:00",
        "10:15:00",
        "10:15:00.123456",
        "24.11.2026",
        "01/02/2026",
        "ord_1a2b3c4d",
        "1.2.3",
        "v10.20.300",
        "12345678",
        "1732443300",  # an epoch timestamp
        "order 1234567 shipped",
        "192.168.100.200",
        "range 1000-2000",
        "ids 12345 67890 11111",
        "build 20261124.1015",
        "/orders/12345/items/678",
    ],
)
def test_dates_times_versions_ids_and_numbers_are_not_phones(text):
    assert Redactor().redact_text(text) == text


@pytest.mark.parametrize(
    "phone",
    [
        "+1 415 555 0100",
        "+1 (415) 555-0134",
        "+14155550100",
        "(415) 555-0100",
        "415-555-0100",
        "415.555.0100",
        "1-800-555-0100",
        "+44 20 7946 0958",
        "020 7946 0958",
        "+49 30 12345678",
        "030 1234567",
        "+33 1 23 45 67 89",
    ],
)
def test_phone_numbers_are_masked(phone):
    assert Redactor().redact_text(f"call {phone}, thanks") == "call [PHONE], thanks"


def test_a_long_unbroken_string_is_redacted_in_linear_time():
    # The e-mail pattern used to restart inside every run of word characters: 200k of them took ~20 s.
    import time

    blob = "x" * 200_000
    start = time.thread_time()  # (CPU of this thread: a loaded machine's waits do not count)
    assert Redactor().redact_text(blob) == blob
    assert Redactor().redact_text(f"{blob}@example.com") == "[EMAIL]"
    assert time.thread_time() - start < 2.0


def test_a_huge_argument_is_cut_then_redacted_once_and_nothing_downstream_exceeds_the_limit(
    store_args_telemetry, monkeypatch
):
    from agent_otel.redaction import CUT_SLACK

    t = store_args_telemetry  # redaction.max_chars: 200
    scanned: list[int] = []
    original = Redactor.redact_text

    def counting(self, text):
        scanned.append(len(text))
        return original(self, text)

    monkeypatch.setattr(Redactor, "redact_text", counting)
    # The e-mail address straddles the cut: it is redacted whole, never half kept.
    body = "x" * 140 + " mail alice.smith@example.com " + "y" * 5_000_000
    with agent_otel.run("a") as run:
        run.call_tool("upload", lambda **kw: {"echo": kw["body"]}, {"body": body, "password": "hunter2"})
    (span,) = t.spans_named("execute_tool")
    (event,) = t.events("tool_result")
    marker = len("...[truncated 99999999 chars]")
    for attr in (c.GEN_AI_TOOL_CALL_ARGUMENTS, c.GEN_AI_TOOL_CALL_RESULT):
        assert len(span.attributes[attr]) <= 200 + marker, attr
    for value in (event["args"], event["result"]):  # the copy for events: the same limit, plus markers
        assert len(json.dumps(value, separators=(",", ":"))) <= 200 + 2 * marker
    dumped = json.dumps(dict(span.attributes)) + json.dumps(event)
    assert "alice" not in dumped and "hunter2" not in dumped
    # Args and result were each redacted once, and only their first max_chars + CUT_SLACK characters.
    assert sum(scanned) <= 2 * (200 + CUT_SLACK + 100), scanned


EMAIL, PASSWORD, API_KEY = "alice.smith@example.com", "Tr0ub4dor&3", "sk-proj-AbCdEfGhIjKlMnOpQrStUv"


def _login(user: str) -> None:
    raise PermissionError(f"login failed for {user} with password {PASSWORD} (key {API_KEY})")


def _export_failing_run(monkeypatch, tmp_path, config: dict) -> list:
    """One run whose tool and LLM call fail with secrets in the message, exported to a real OTLP
    receiver with default settings (store_args off); returns the spans the receiver got."""
    import time

    from agent_otel import sdk
    from tests.otlp_receiver import OTLPReceiver

    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "AGENT_OTEL_CONFIG", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path))
    agent_otel.shutdown()
    receiver = OTLPReceiver().start()
    try:
        agent_otel.setup(
            "svc",
            endpoint=receiver.endpoint,
            store=False,
            instrument=False,
            config={"exporter": {"schedule_delay_s": 0.05}, **config},
        )
        login = agent_otel.tool(name="login")(_login)
        with pytest.raises(PermissionError), agent_otel.run("secret-agent") as run:
            run.record_llm(model="gpt-4o", error=PermissionError(f"quota for {EMAIL} exceeded"))
            login(EMAIL)
        assert sdk.flush(5)
        deadline = time.monotonic() + 10
        while receiver.count() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(receiver.spans)
    finally:
        agent_otel.shutdown()
        receiver.stop()


def _event_attrs(span) -> dict:
    (event,) = [e for e in span.events if e.name == "exception"]
    return {kv.key: kv.value.string_value for kv in event.attributes}


def test_exception_messages_and_stack_traces_reach_the_collector_redacted(monkeypatch, tmp_path):
    spans = _export_failing_run(monkeypatch, tmp_path, {})
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"invoke_agent secret-agent", "execute_tool login", "chat gpt-4o"}
    wire = "".join(str(s) for s in spans)  # every attribute, event and status, as the collector got it
    for raw in (EMAIL, PASSWORD, API_KEY, "alice.smith"):
        assert raw not in wire, raw
    tool = _event_attrs(by_name["execute_tool login"])
    assert tool["exception.type"] == "PermissionError"
    assert tool["exception.message"] == "login failed for [EMAIL] with password [REDACTED] (key [API_KEY])"
    assert "in _login" in tool["exception.stacktrace"]  # the stack trace is kept, redacted
    assert tool["exception.stacktrace"].endswith(tool["exception.message"] + "\n")
    assert by_name["execute_tool login"].status.message == f"PermissionError: {tool['exception.message']}"
    assert (
        _event_attrs(by_name["invoke_agent secret-agent"])["exception.message"] == tool["exception.message"]
    )
    assert _event_attrs(by_name["chat gpt-4o"])["exception.message"] == "quota for [EMAIL] exceeded"


def test_stack_traces_can_be_left_out_or_kept_raw_by_opt_in(monkeypatch, tmp_path):
    spans = _export_failing_run(monkeypatch, tmp_path, {"redaction": {"stacktrace": "off"}})
    assert all("exception.stacktrace" not in _event_attrs(s) for s in spans)
    spans = _export_failing_run(monkeypatch, tmp_path, {"redaction": {"stacktrace": "raw"}})
    (tool,) = [_event_attrs(s) for s in spans if s.name == "execute_tool login"]
    assert PASSWORD in tool["exception.stacktrace"] and PASSWORD not in tool["exception.message"]


@pytest.mark.parametrize(
    ("value", "raw", "expected"),
    [
        ({"alice@example.com": 1, "bob@example.com": 2}, "example.com", {"[EMAIL]": 1, "[EMAIL]#2": 2}),
        ("https://admin:pw123@host/x", "pw123", "https://admin:[REDACTED]@host/x"),
        ("postgresql://app:pw@db/x", ":pw@", "postgresql://app:[REDACTED]@db/x"),
        ("charge with sk_live_51HabcdEFGHijklMNOP", "sk_live_51H", "charge with [API_KEY]"),
        ("restricted rk_test_abcdefghij12", "rk_test_", "restricted [API_KEY]"),
        ("card 4111.1111.1111.1111 ok", "4111.1111", "card [CARD] ok"),
        ("amex 3782.822463.10005", "3782.822463", "amex [CARD]"),
        ("my ssn: 123-45-6789", "123-45-6789", "my ssn: [REDACTED]"),
        ("SSN on file 078-05-1120, verified", "078-05-1120", "SSN on file [SSN], verified"),
        ("login failed with password hunter2!", "hunter2", "login failed with password [REDACTED]!"),
        ("the api key is Abc123xyz.", "Abc123xyz", "the api key is [REDACTED]."),
        ("the token was ab12cd34", "ab12cd34", "the token was [REDACTED]"),
    ],
)
def test_secrets_in_keys_urls_stripe_keys_dotted_cards_ssns_and_prose_are_masked(
    store_args_telemetry, value, raw, expected
):
    assert Redactor().redact(value) == expected
    with agent_otel.run("a") as run:
        run.call_tool("echo", lambda v: v, [value])
    (span,) = store_args_telemetry.spans_named("execute_tool")
    (event,) = store_args_telemetry.events("tool_result")
    wire = json.dumps(dict(span.attributes)) + json.dumps(event)
    assert raw not in wire


@pytest.mark.parametrize(
    "text",
    [
        "version 1.2.3.4 from 10.0.0.1",
        "order 1234.5678.9012.3456",  # not a Luhn number
        "on 2026-11-24 call 415-555-0100",
        "id 000-12-3456 and 987-65-4321",  # never-issued SSNs
        "password reset failed",
        "token expired, session ended",
        "the secret sauce",
        "reset password for user1",
    ],
)
def test_lookalikes_of_the_new_secrets_are_kept(text):
    red = Redactor().redact_text(text)
    assert red == text.replace("415-555-0100", "[PHONE]")


BYTES_KEY = "sk-live-ABCDEFGHIJKLMNOP1234"


def test_bytes_arguments_and_results_leave_redacted_not_as_base64(store_args_telemetry):
    """Bytes are held as base64 in the JSON copy; the redactor must read the text inside, or a secret in
    a bytes argument (a request body, a file read) leaves the process encoded but whole."""
    import base64

    t = store_args_telemetry
    body = f"Authorization: Bearer {BYTES_KEY}\nto alice.smith@example.com".encode()
    with agent_otel.run("a") as run:
        run.call_tool(
            "post", lambda **kw: body, {"body": body, "png": b"\x89PNG\r\n\x1a\n" + BYTES_KEY.encode()}
        )
    (span,) = t.spans_named("execute_tool")
    (event,) = t.events("tool_result")
    dumped = span.attributes[c.GEN_AI_TOOL_CALL_ARGUMENTS] + span.attributes[c.GEN_AI_TOOL_CALL_RESULT]
    dumped += json.dumps(event)
    for raw in (BYTES_KEY, "alice.smith"):
        for encoded in (raw, base64.b64encode(raw.encode()).decode()[:16]):
            assert encoded not in dumped, encoded
    assert base64.b64encode(body).decode()[:16] not in dumped
    # text stays readable, redacted; bytes that are not text are not shown (nothing could redact them)
    assert event["args"]["body"] == {"$utf8": "Authorization: Bearer [REDACTED]\nto [EMAIL]"}
    assert event["result"] == {"$utf8": "Authorization: Bearer [REDACTED]\nto [EMAIL]"}
    assert event["args"]["png"] == {"$bytes": f"[{8 + len(BYTES_KEY)} bytes, not text: not shown]"}


def test_long_bytes_are_cut_after_the_text_inside_is_redacted():
    r = Redactor(max_chars=200)
    body = ("é" * 20 + f" key {BYTES_KEY} ").encode() * 50
    copy, text = r.bounded({"body": body})
    assert copy["body"]["$utf8"].startswith("é" * 20 + " key [API_KEY]")
    assert copy["body"]["$utf8"].endswith(f"...[truncated, about {len(body) + 2} bytes in all]")
    assert BYTES_KEY[:10] not in text and len(text) < 200
    assert r.redact({"$bytes": "not base64!"}) == {"$bytes": "[8 bytes, not text: not shown]"}


def test_name_value_pairs_in_lists_are_masked_like_mapping_entries(store_args_telemetry):
    """HTTP headers as a list of pairs (requests, httpx, ASGI's ``scope["headers"]`` as bytes), cookie
    jars, form fields: the value of a pair whose name is a secret key is masked, as in a mapping."""
    t = store_args_telemetry
    headers = [("Authorization", "Digest-ish q7Zr0pW3xK9m"), ("Accept", "application/json")]
    asgi = [(b"cookie", b"sid=q7Zr0pW3xK9m"), (b"x-api-key", b"q7Zr0pW3xK9m")]
    form = [["password", "q7Zr0pW3xK9m"], ["user", "bob"]]
    with agent_otel.run("a") as run:
        for name, pairs in (("headers", headers), ("scope", asgi), ("form", form)):
            run.call_tool("fetch", lambda **kw: "ok", {name: pairs})
    events = t.events("tool_result")
    sent = json.dumps(events) + "".join(
        s.attributes[c.GEN_AI_TOOL_CALL_ARGUMENTS] for s in t.spans_named("execute_tool")
    )
    assert "q7Zr0pW3xK9m" not in sent
    args = {k: v for e in events for k, v in e["args"].items()}
    assert args["headers"] == [["Authorization", "[REDACTED]"], ["Accept", "application/json"]]
    assert args["scope"] == [[{"$utf8": "cookie"}, "[REDACTED]"], [{"$utf8": "x-api-key"}, "[REDACTED]"]]
    assert args["form"] == [["password", "[REDACTED]"], ["user", "bob"]]


def test_a_secret_straddling_the_cut_of_an_exception_message_or_stack_trace_is_not_half_kept():
    """Exception text is cut (the message to redaction.max_chars, the stack trace to its last 16 KiB):
    redacted first, a secret across the cut would be seen whole; cut first, its other half would leave
    unrecognised (an e-mail's local part, the tail of an API key)."""
    import traceback

    from agent_otel.redaction import exception_attributes

    email = "alice.secret.name@example.com"
    try:
        raise PermissionError("x" * 4080 + f" {email} denied")  # the cut at 4096 is inside the address
    except PermissionError as exc:
        message = exception_attributes(exc)["exception.message"]
    assert message.startswith("x" * 4080 + " [EMAIL]") and "alice" not in message and len(message) <= 4096

    try:
        raise ValueError(f"{BYTES_KEY} " + "C" * 16372)
    except ValueError as exc:
        stack = "".join(traceback.format_exception(exc))
        start = len(stack) - 16384  # where the kept tail of the stack trace begins: inside the key
        assert stack[start - 18 : start + 10] == BYTES_KEY
        trace = exception_attributes(exc)["exception.stacktrace"]
    assert BYTES_KEY[-10:] not in trace and trace.endswith("C" * 100 + "\n") and len(trace) <= 16384


def test_an_llm_error_given_as_text_leaves_as_a_redacted_description_not_as_error_type(telemetry):
    """``record_llm(error=...)`` takes an error type (``"rate_limit_exceeded"``, as the integrations pass)
    or an exception; ``error=str(exc)`` made the raw message ``error.type``: a span attribute, a stored
    event field and a label of every GenAI and tool metric, secrets and unbounded cardinality included."""
    message = f"quota for {EMAIL} exceeded (key {API_KEY})"
    with agent_otel.run("a") as run:
        run.record_llm(model="gpt-4o", error=message)
        run.record_llm(model="gpt-4o", error="rate_limit_exceeded")
    failed, limited = telemetry.spans_named("chat")
    assert (
        failed.attributes[c.ERROR_TYPE] == "_OTHER"
        and limited.attributes[c.ERROR_TYPE] == "rate_limit_exceeded"
    )
    assert failed.status.description == "quota for [EMAIL] exceeded (key [API_KEY])"
    assert [e["error"] for e in telemetry.events("llm_result")] == ["_OTHER", "rate_limit_exceeded"]
    everything = json.dumps([json.loads(s.to_json()) for s in telemetry.spans()])
    everything += json.dumps(telemetry.events()) + json.dumps(telemetry.metrics(), default=str)
    assert (
        EMAIL not in everything
        and API_KEY not in everything
        and "quota for" not in everything.replace(failed.status.description, "")
    )


def test_a_stops_detail_leaves_the_process_redacted_and_the_caller_gets_it_whole(telemetry):
    """``run.stop(reason, detail)`` and an ``AgentStopped`` of a sub-agent carry free text, often built
    from an exception or the values at hand; it went onto the run span's ``agent.stop`` event as it was,
    while the same text as an exception message left redacted."""
    detail = f"CRM refused {EMAIL}: login failed with password {PASSWORD} (key {API_KEY})"
    with agent_otel.run("first") as run:
        result = run.stop("error", detail)
    assert result.detail == detail  # the caller's StopResult, in the process, is not touched

    @agent_otel.tool(name="delegate")
    def delegate() -> None:
        with agent_otel.run("child") as child:
            raise agent_otel.AgentStopped(child.stop("error", detail))

    with pytest.raises(agent_otel.AgentStopped):
        with agent_otel.run("parent"):
            delegate()
    masked = "CRM refused [EMAIL]: login failed with password [REDACTED] (key [API_KEY])"
    details = {
        s.attributes["gen_ai.agent.name"]: e.attributes["detail"]
        for s in telemetry.spans_named("invoke_agent")
        for e in s.events
        if e.name == "agent.stop"
    }
    assert details["first"] == details["child"] == masked
    assert details["parent"].startswith("sub-agent run ") and details["parent"].endswith(f"(error): {masked}")
    everything = json.dumps([json.loads(s.to_json()) for s in telemetry.spans()])
    everything += json.dumps(telemetry.events())
    for raw in (EMAIL, PASSWORD, API_KEY):
        assert raw not in everything, raw


def test_agent_otels_own_warnings_quote_a_failure_redacted(telemetry, monkeypatch, caplog):
    """agent-otel reports a failure of its own once and carries on; the failure often quotes the value it
    was handling (Python's ``int()`` and ``KeyError`` do), and the warning printed it as it was."""
    from agent_otel import steps

    monkeypatch.setattr(steps, "_reported", set())  # "reported once" is per process
    caplog.set_level(logging.WARNING, "agent_otel")
    try:
        int(f"Bearer {API_KEY}")
    except ValueError as exc:
        steps.internal_error("reading an LLM request", exc)
    steps.internal_error("reading an LLM response", KeyError(EMAIL))
    assert API_KEY not in caplog.text and EMAIL not in caplog.text
    first, second = (r.getMessage() for r in caplog.records)
    assert first == (
        "agent-otel: error while reading an LLM request (ValueError: invalid literal for int() with base 10: "
        "'Bearer [API_KEY]'); telemetry continues without it"
    )
    assert "(KeyError: '[EMAIL]')" in second


def test_argument_hashes_can_be_kept_off_spans_and_still_serve_the_store(monkeypatch, tmp_path):
    """``args_sha`` is an unkeyed hash, so it gives a low-entropy argument away to whoever can guess it (a
    PIN: ten thousand tries). ``store_args_hash: false`` keeps the tool and input hashes off the spans;
    the local store keeps them, for replay and ``agent-otel show``."""
    import sqlite3

    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agent_otel import sdk
    from agent_otel.hashing import sha

    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path))
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "AGENT_OTEL_CONFIG", "AGENT_OTEL_STORE"):
        monkeypatch.delenv(var, raising=False)

    @agent_otel.tool(name="check_pin")
    def check_pin(pin: str) -> bool:
        return pin == "4711"

    def spans_of_one_run(hashes: bool) -> list:
        agent_otel.shutdown()
        exporter = InMemorySpanExporter()
        events = {"store_args_hash": hashes}
        config = {"exporter": {"probe_local": False}, "logging": {"events": events}}
        agent_otel.setup("svc", span_exporters=[exporter], instrument=False, config=config)
        with pytest.raises(agent_otel.AgentStopped), agent_otel.run("bank", input={"pin": "4711"}):
            for _ in range(4):  # the loop guard stops the fourth: its span event names the hash too
                check_pin("4711")
        assert sdk.flush(5)
        agent_otel.shutdown()
        return list(exporter.get_finished_spans())

    by_default = {s.name: dict(s.attributes) for s in spans_of_one_run(True)}
    leaked = by_default["execute_tool check_pin"][c.TOOL_ARGS_SHA]
    assert [p for p in (f"{i:04d}" for i in range(10_000)) if sha({"pin": p}) == leaked] == ["4711"]

    spans = spans_of_one_run(False)
    keys = {k for s in spans for k in s.attributes} | {
        k for s in spans for e in s.events for k in e.attributes
    }
    assert "guard" in keys and not [k for k in keys if k.endswith("_sha")], keys
    conn = sqlite3.connect(tmp_path / "agent-otel.db")
    stored = conn.execute("SELECT args_sha FROM agent_events WHERE kind = 'tool_result'").fetchall()
    assert set(stored) == {(leaked,)} and len(stored) >= 6  # both runs' calls, hashed in the store as ever

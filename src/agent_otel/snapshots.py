"""Recording tool-result snapshots for replay: what is kept, how it is encoded, and how it is sealed.

With a local run store and ``replay.record: true`` (the default), each runtime ``setup()`` builds has a
:class:`Recorder` among its policies (registered at the end of this module). At the start of every run it
records the run's input and versions; after each tool step (the step engine's ``after_step`` hook) it
records the result or the raised error,
keyed by ``(run_id, step_id)`` with the tool name, ``args_sha`` and ``result_sha``. Raw arguments are
not recorded: a replay matches calls by ``args_sha``.

Records travel as ``("snapshot", {...})`` through the event pipeline to the store sink only (the
JSON-lines sink writes ``event`` records only, and nothing here touches a span). The raw bytes ride in a
:class:`Blob`, whose repr shows only its size, so a generic sink that dumps records cannot print them.
While a record waits in the pipeline's queue it holds plain values only (the bytes, their sha and the
sealing key's id), which CPython's garbage collector does not track; the blob object is made as the record
leaves the queue (:meth:`Pipeline.on_take <agent_otel.events.Pipeline.on_take>`), so a queue thousands of
records long, as in an outage, adds nothing to the collector's full collections.
Encryption (Fernet, from the ``crypto`` extra) happens on the pipeline's thread, just before the write.

Encoding: a result is stored as its canonical JSON, the very bytes ``result_sha`` is computed over, so the
content address of a blob is its ``result_sha``. A replay hands the agent the JSON form back: JSON values
come back equal; tuples come back as lists and other objects as the mapping they are hashed as (the
snapshot row keeps the original type name so a replay can say so). An error is stored as its class,
module, args and attributes, and rebuilt on replay if its class is importable without importing anything.

Nothing here raises into the agent: a failure is counted in :data:`counters` and warned about once.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent_otel import runtime
from agent_otel.events import QUEUED_BLOB
from agent_otel.hashing import canonical_json, jsonable, sha_bytes
from agent_otel.redaction import error_text
from agent_otel.snapshot_outcomes import ERROR, EXCLUDED, INTERRUPTED, OK, TOO_LARGE, warn_once
from agent_otel.snapshot_outcomes import PLAIN as PLAIN  # re-exported: the encodings of stored data
from agent_otel.snapshot_outcomes import SEALED as SEALED
from agent_otel.snapshot_outcomes import WRITE_FAILED as WRITE_FAILED  # re-exported: replay's vocabulary
from agent_otel.snapshot_outcomes import counters as counters  # re-exported: failure counts, for doctor
from agent_otel.steps import Policy, RunPolicy, Step
from agent_otel.tools import ToolCall, active_tool_call

if TYPE_CHECKING:
    from agent_otel.config import Config
    from agent_otel.events import Pipeline
    from agent_otel.run import Run

logger = logging.getLogger("agent_otel")

DEFAULT_KEY_ENV = "AGENT_OTEL_SNAPSHOT_KEY"

_NATIVE = (dict, list, str, int, float, bool, type(None))
_NOT_OUTCOMES = ("AgentStopped", "KeyboardInterrupt", "SystemExit", "GeneratorExit", "CancelledError")


class SnapshotKeyError(Exception):
    """The snapshot key in the environment is unusable, or sealed data cannot be opened with it."""


def key_id(key: bytes) -> str:
    """A short, non-secret tag of a key, stored next to what it sealed (which key do I need?)."""
    return hashlib.sha256(key).hexdigest()[:8]


class Sealer:
    """Encrypts with the first key and decrypts with any of them (Fernet: AES-128-CBC + HMAC-SHA256).

    Keys come from an environment variable, comma-separated, so a key can be rotated: put the new key
    first and keep the old one after it until the old snapshots have expired.
    """

    def __init__(self, keys: list[bytes], env_var: str) -> None:
        try:
            from cryptography.fernet import Fernet
        except ImportError:
            raise SnapshotKeyError(
                f"{env_var} is set but the cryptography package is missing: pip install 'agent-otel[crypto]'"
            ) from None
        self.env_var = env_var
        self._fernets: dict[str, Any] = {}
        for key in keys:
            try:
                fernet = Fernet(key)
            except (ValueError, TypeError):
                raise SnapshotKeyError(
                    f"{env_var} does not hold Fernet keys (32 url-safe base64 bytes each, comma-separated); "
                    "make one with: python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'"
                ) from None
            self._fernets.setdefault(key_id(key), fernet)
        self.key_id = key_id(keys[0])

    @classmethod
    def from_env(cls, env_var: str | None, env: Mapping[str, str] | None = None) -> Sealer | None:
        """The sealer for the keys in ``env_var``; None when the variable is unset or empty."""
        if not env_var:
            return None
        raw = (os.environ if env is None else env).get(env_var, "")
        keys = [k.strip().encode("ascii", "replace") for k in raw.split(",") if k.strip()]
        return cls(keys, env_var) if keys else None

    @property
    def key_ids(self) -> list[str]:
        return list(self._fernets)

    def seal(self, plain: bytes) -> bytes:
        return self._fernets[self.key_id].encrypt(plain)

    def open(self, data: bytes, kid: str) -> bytes:
        fernet = self._fernets.get(kid)
        if fernet is None:
            raise SnapshotKeyError(
                f"the snapshots were encrypted with key {kid}, which is not among the keys in "
                f"{self.env_var} ({', '.join(self._fernets)})"
            )
        from cryptography.fernet import InvalidToken

        try:
            return fernet.decrypt(bytes(data))
        except InvalidToken:
            raise SnapshotKeyError(f"a snapshot sealed with key {kid} fails its integrity check") from None


def open_blob(encoding: str, kid: str, data: bytes, sealer: Sealer | None, env_var: str) -> bytes:
    """The plaintext of a stored blob; SnapshotKeyError when it is sealed and cannot be opened."""
    if encoding == PLAIN:
        return bytes(data)
    if encoding != SEALED:
        raise SnapshotKeyError(f"unknown snapshot encoding {encoding!r} (written by a newer agent-otel?)")
    if sealer is None:
        raise SnapshotKeyError(
            f"the snapshots are encrypted (key {kid}); set {env_var} to the key they were recorded with"
        )
    return sealer.open(data, kid)


class Blob:
    """Bytes to store once under their content hash; hashed and sealed on the store's thread, not the
    agent's. The repr shows the size only, so a sink that prints records never prints a raw result.
    """

    __slots__ = ("_sha", "plain", "sealer")

    def __init__(self, sha: str | None, plain: bytes, sealer: Sealer | None) -> None:
        self._sha = sha
        self.plain = plain
        self.sealer = sealer

    @property
    def sha(self) -> str:
        """The content address: the 24-hex sha of the bytes (a result's result_sha)."""
        if self._sha is None:
            self._sha = sha_bytes(self.plain)
        return self._sha

    def sealed(self) -> tuple[str, str, int, bytes]:
        """``(encoding, key_id, plaintext size, data)`` as stored."""
        if self.sealer is None:
            return PLAIN, "", len(self.plain), self.plain
        return SEALED, self.sealer.key_id, len(self.plain), self.sealer.seal(self.plain)

    def __repr__(self) -> str:
        return f"<snapshot blob of {len(self.plain)} bytes>"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # a sink that pickles records (multiprocessing) gets the size only
        return (str, (repr(self),))


# The sealers of this process by the id of the key they seal with (their first key), so that a queued
# record names its sealer with a string, not an object (see the module docstring).
_SEALERS: dict[str, Sealer] = {}
_BLOB_SHA = "_blob_sha"
_BLOB_KEY = "_blob_key"


def _queue_blob(record: dict[str, Any], sha: str | None, plain: bytes, sealer: Sealer | None) -> None:
    """Attach a blob to ``record`` in its queued, untracked form (:func:`_thaw` makes the Blob)."""
    record[QUEUED_BLOB] = plain
    record[_BLOB_SHA] = sha
    record[_BLOB_KEY] = sealer.key_id if sealer is not None else None


def _thaw(record: dict[str, Any]) -> None:
    """On the pipeline's thread, as a snapshot record leaves the queue: its bytes become its Blob."""
    plain = record.pop(QUEUED_BLOB, None)
    if plain is None:
        return
    sha = record.pop(_BLOB_SHA, None)
    kid = record.pop(_BLOB_KEY, None)
    record["blob"] = Blob(sha, plain, _SEALERS[kid] if kid is not None else None)


# --- results and errors as JSON ---------------------------------------------------------------------


def load_json(plain: bytes) -> Any:
    """A stored result or input back as a Python value (NaN and large ints included)."""
    return json.loads(plain.decode("utf-8", "surrogatepass"))


def type_name(value: Any) -> str | None:
    """The type of ``value`` when a replay cannot hand it back as it was (None for JSON values)."""
    cls = type(value)
    if cls in _NATIVE:
        return None
    return f"{cls.__module__}.{cls.__qualname__}"


def error_document(exc: BaseException) -> bytes:
    """An exception as canonical JSON: class, module, message, args and public attributes."""
    cls = type(exc)
    attrs = {}
    for name, value in getattr(exc, "__dict__", {}).items():
        if not name.startswith("_"):
            attrs[name] = value
    doc = {
        "type": cls.__qualname__,
        "module": cls.__module__,
        "message": str(exc),
        "args": jsonable(list(exc.args)),
        "attrs": jsonable(attrs),
    }
    return canonical_json(doc)


class RecordedToolError(Exception):
    """A recorded tool error whose class cannot be rebuilt here (not importable without an import)."""

    def __init__(self, error_type: str, module: str, message: str) -> None:
        self.error_type = error_type
        self.module = module
        self.message = message
        super().__init__(f"{module}.{error_type}: {message} (recorded error; its class is not loaded here)")


# Modules that stand in for ``__main__`` when rebuilding a recorded error: a script recorded as
# `python shop.py` defines its classes in __main__, and `agent-otel replay --call shop:handle` imports the
# same file as `shop` (cli/replay.py names it here).
_MAIN_STAND_INS: list[str] = []


def main_stands_in(module_name: str) -> None:
    if module_name not in _MAIN_STAND_INS:
        _MAIN_STAND_INS.append(module_name)


def _recorded_class(module_name: str, qualname: str) -> Any:
    for name in [module_name] + (_MAIN_STAND_INS if module_name == "__main__" else []):
        cls: Any = sys.modules.get(name)
        for part in qualname.split("."):
            cls = getattr(cls, part, None) if cls is not None and part != "<locals>" else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            return cls
    return None


def rebuild_error(plain: bytes) -> BaseException:
    """The recorded exception, rebuilt without calling its ``__init__``; a RecordedToolError otherwise.

    Only classes of modules already imported are used: a store's content never makes this process
    import a module.
    """
    doc = load_json(plain)
    cls = _recorded_class(doc.get("module") or "", str(doc.get("type") or ""))
    args = tuple(doc.get("args") or ())
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            exc = cls.__new__(cls, *args)
            exc.args = args
            for name, value in (doc.get("attrs") or {}).items():
                with contextlib.suppress(Exception):
                    setattr(exc, name, value)
            return exc
        except Exception:
            pass
    return RecordedToolError(str(doc.get("type")), str(doc.get("module")), str(doc.get("message")))


# --- the recorder ------------------------------------------------------------------------------------


class Recorder(Policy, RunPolicy):
    """The recording policy: turns run starts and finished tool steps into snapshot records.

    One object serves every run (it keeps no per-run state), so it is its own run policy.
    """

    order = 300  # after the replay policy, which marks the runs that must not be recorded
    after_kinds = ("tool",)

    def __init__(
        self,
        pipeline: Pipeline,
        sealer: Sealer | None = None,
        exclude: list[str] | tuple[str, ...] = (),
        max_bytes: int = 16 << 20,
    ) -> None:
        self.pipeline = pipeline
        self.sealer = sealer
        if sealer is not None:
            _SEALERS[sealer.key_id] = sealer
        pipeline.on_take("snapshot", _thaw)
        self.exclude = tuple(exclude)
        self.max_bytes = max_bytes
        self._excluded: dict[str, bool] = {}

    @classmethod
    def from_config(cls, config: Config, pipeline: Pipeline) -> Recorder | None:
        """The recorder ``setup()`` installs, or None (recording off, or it cannot be done as asked)."""
        section = config.get("replay")
        if not section["record"]:
            return None
        try:
            sealer = Sealer.from_env(section["key_env"])
        except SnapshotKeyError as exc:
            logger.warning("agent-otel: tool-result snapshots are not recorded: %s", exc)
            return None
        if sealer is None and section["require_encryption"]:
            logger.warning(
                "agent-otel: tool-result snapshots are not recorded: replay.require_encryption is true "
                "and %s is not set",
                section["key_env"],
            )
            return None
        return cls(pipeline, sealer, section["exclude"], int(section["max_result_mb"] * (1 << 20)))

    def _is_excluded(self, tool: str) -> bool:
        try:
            return self._excluded[tool]
        except KeyError:
            hit = any(fnmatch.fnmatchcase(tool, p) for p in self.exclude)
            if len(self._excluded) < 10000:
                self._excluded[tool] = hit
            return hit

    def start_run(self, run: Run) -> Recorder | None:
        if run.replay_of is not None or run.is_replay:
            return None  # a replay's results are the recording's own
        self.run_started(run)
        return self

    def after_step(self, step: Step, result: Any, exc: BaseException | str | None) -> tuple[Any, ...] | None:
        if isinstance(step, ToolCall) and not isinstance(exc, str):
            return self.tool_finished(step, result, exc)  # queued by the engine with the step's event
        return None

    def run_started(self, run: Run) -> None:
        """Record the run's input (a blob keyed by input_sha) and versions; never raises."""
        try:
            record = {
                "kind": "run",
                "run_id": run.run_id,
                "parent_run_id": run.parent_run_id,
                "parent_step": _enclosing_step(run.parent),
                "agent": run.agent,
                "model": run.model,
                "prompt_version": run.prompt_version,
                "tools_version": run.tools_version,
                "input_sha": run.input_sha,
                "input_type": type_name(run.input) if run.input_sha is not None else None,
                "created_at_ms": run.created_at_ms or int(time.time() * 1000),
                "blob": None,
            }
            plain = run.input_json
            if plain is not None:
                if len(plain) > self.max_bytes:
                    warn_once(
                        "too_large",
                        "a run input of %d bytes exceeds replay.max_result_mb; it is not recorded",
                        len(plain),
                    )
                else:  # input_sha is the sha of these bytes
                    _queue_blob(record, run.input_sha, plain, self.sealer)
            self.pipeline.emit("snapshot", record)
        except Exception as exc:
            why = error_text(exc, runtime.current().config)  # redacted: it may quote the input
            warn_once("serialize", "recording a run input for replay failed (%s)", why)

    def tool_finished(self, call: ToolCall, result: Any, exc: BaseException | None) -> tuple[str, Any] | None:
        """The snapshot record of a finished tool call's result or error, ``("snapshot", record)`` to queue
        (None if it could not be made); never raises."""
        if call.args_sha is None:
            # A bridged tool step whose library put no arguments on its span: nothing a replay could match
            # it by (and the store's args_sha is NOT NULL).
            return None
        try:
            tool = call.options.name
            plain = call.result_json
            digest = call.result_sha  # computed with the span's agent.tool.result_sha: not again
            if (
                exc is None
                and plain is not None
                and digest is not None
                and len(plain) <= self.max_bytes
                and self._excluded.get(tool) is False
                and call.snapshot_json is None
            ):
                # The common case, decided in one test: a result recorded whole, under its result_sha. The
                # record below, in one display with its blob queued as _queue_blob queues it.
                run = call.run
                sealer = self.sealer
                return (
                    "snapshot",
                    {
                        "kind": "tool",
                        "run_id": run.run_id,
                        "step_id": call.step_id,
                        "parent_step": _enclosing_step(run, call),
                        "tool": tool,
                        "args_sha": call.args_sha,
                        "outcome": OK,
                        "result_sha": None,
                        "error_type": None,
                        "result_type": None if type(result) in _NATIVE else type_name(result),
                        "created_at_ms": int(time.time() * 1000),
                        "blob": None,
                        QUEUED_BLOB: plain,
                        _BLOB_SHA: digest,
                        _BLOB_KEY: sealer.key_id if sealer is not None else None,
                    },
                )
            outcome = OK
            result_sha: str | None = None
            error_type: str | None = None
            result_type: str | None = None
            blob_plain: bytes | None = None  # queued as plain values (_queue_blob), a Blob once taken
            blob_sha: str | None = None
            if exc is None and call.snapshot_json is not None:
                # What a replay serves differs from what result_sha hashes: stored under its own hash.
                result_sha, plain = digest, call.snapshot_json
                if self._is_excluded(tool):
                    plain = None
            elif exc is not None:
                plain = None
                outcome = ERROR
                error_type = type(exc).__name__
                if error_type in _NOT_OUTCOMES:
                    outcome = INTERRUPTED
                elif not self._is_excluded(tool):
                    plain = error_document(exc)
            else:
                if plain is None or digest is None:
                    plain = canonical_json(result)
                    digest = sha_bytes(plain)
                if type(result) not in _NATIVE:
                    result_type = type_name(result)
                if self._is_excluded(tool):
                    result_sha = digest
                    plain = None
            if outcome != INTERRUPTED and blob_plain is None:
                if plain is None:
                    outcome = EXCLUDED
                elif len(plain) > self.max_bytes:
                    if exc is None:
                        result_sha = digest
                    outcome = TOO_LARGE
                    warn_once(
                        "too_large",
                        "a result of tool %r (%d bytes) exceeds replay.max_result_mb; it is not recorded",
                        tool,
                        len(plain),
                    )
                else:  # a result's content address is its result_sha; an error's is hashed by the store
                    blob_plain = plain
                    blob_sha = digest if exc is None and call.snapshot_json is None else None
            run = call.run
            # Built in one go, with the values worked out above (this runs after every tool call).
            record = {
                "kind": "tool",
                "run_id": run.run_id,
                "step_id": call.step_id,
                "parent_step": _enclosing_step(run, call),
                "tool": tool,
                "args_sha": call.args_sha,
                "outcome": outcome,
                "result_sha": result_sha,
                "error_type": error_type,
                "result_type": result_type,
                "created_at_ms": int(time.time() * 1000),
                "blob": None,
            }
            if blob_plain is not None:
                _queue_blob(record, blob_sha, blob_plain, self.sealer)
            return ("snapshot", record)
        except Exception as err:
            why = error_text(err, runtime.current().config)  # redacted: it may quote the result or error
            warn_once("serialize", "recording a tool result for replay failed (%s)", why)
            return None


def _enclosing_step(run: Run | None, call: ToolCall | None = None) -> int | None:
    """Step id of the tool call of ``run`` that is current (the one a nested call or sub-agent runs in)."""
    if run is None:
        return None
    outer = active_tool_call()
    if outer is None or outer is call or outer.run is not run or outer.done:
        return None
    if call is not None and outer.step_id >= call.step_id:
        return None
    return outer.step_id


def _recorder(config: Config, pipeline: Pipeline) -> Recorder | None:
    """Snapshots are recorded only into a local run store (``replay.record``, on by default)."""
    store = sys.modules.get("agent_otel.store")  # a StoreSink exists only if its module was imported
    if store is None or not any(isinstance(sink, store.StoreSink) for sink in pipeline.sinks()):
        return None
    return Recorder.from_config(config, pipeline)


runtime.register_policy("recorder", _recorder)

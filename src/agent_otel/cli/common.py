"""What every command shares: the store, durations and times, output in text or JSON, and errors."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from agent_otel.config import Config, load
from agent_otel.store import Store, StoreError, Target, open_store, resolve


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_ERROR = 2


# What SQLite says of a file it cannot read as a database, and what to do about it. A reading command met
# "database disk image is malformed" as an internal error ("DatabaseError: ...", set AGENT_OTEL_DEBUG) and
# a file that is no store at all as a bare "file is not a database": neither said what an operator can do.
_SQLITE_DAMAGED = "database disk image is malformed"
_SQLITE_NOT_A_STORE = "file is not a database"


def damage_hint(error: str, target: Target | None) -> str:
    """The advice to append to a SQLite error that means the store's file is damaged ('' for any other)."""
    if target is None or target.kind != "sqlite":
        return ""
    if _SQLITE_DAMAGED in error:
        return (
            "; the store's file is damaged: `agent-otel doctor` checks it and says how to salvage what is "
            "left"
        )
    if _SQLITE_NOT_A_STORE in error:
        return (
            "; the file is not a SQLite database, or its first page is damaged: move it aside and the next "
            "run starts a new store there"
        )
    return ""


class _Stdout:
    """stdout for a reader that may go away (`agent-otel drift | head -3`): once it has, the rest of the
    output goes to /dev/null and the command finishes, so its exit status is its own (drift 1, a healthy
    doctor 0) rather than rich's exit 1 or a BrokenPipeError cutting the command short."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.gone = False

    def _reader_gone(self) -> None:
        self.gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())  # what is still buffered is flushed there, at exit too
        os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._reader_gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_stdout() -> None:
    if not isinstance(sys.stdout, _Stdout):
        sys.stdout = _Stdout(sys.stdout)  # type: ignore[assignment]


def reader_gone() -> bool:
    """True once stdout's reader has gone: a command that would go on printing forever (tail) stops."""
    return isinstance(sys.stdout, _Stdout) and sys.stdout.gone


_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_MAX_DURATION_MS = 36_500 * 86_400_000
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


def parse_duration(text: str) -> int:
    """``90s``, ``30m``, ``2h``, ``7d``, ``1w`` -> milliseconds (argparse type)."""
    match = _DURATION.match(text or "")
    if not match:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}; use a number and a unit: 30m, 2h, 7d, 1w"
        )
    value = float(match.group(1)) * _UNITS_MS[match.group(2).lower()]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}; it must be positive")
    if value > _MAX_DURATION_MS:  # further back than any run, and than the calendar's year 1
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}; at most 100 years (36500d)")
    return int(value)


MAX_COUNT = 1_000_000_000


def positive_int(text: str) -> int:
    """A count from 1 to a billion (argparse type): beyond 64 bits a count reached SQLite's LIMIT and
    came back as ``IntegrityError: datatype mismatch``, not as a bad option."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text} is too large; at most {MAX_COUNT:,}")
    return value


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class When:
    """A point in time given on the command line: ``2h`` (that long ago) or an absolute UTC time."""

    ms: int
    text: str
    ago_ms: int | None = None  # set for a duration


_ABSOLUTE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$", re.I)


def parse_when(text: str) -> When:
    """``30m``, ``2h``, ``7d`` ago, or ``2026-11-24``, ``2026-11-24T17:00``, ``2026-11-24 17:00:05Z``,
    ``...+01:00``: a time without a zone is UTC, as every time the CLI prints (argparse type)."""
    value = (text or "").strip()
    if _DURATION.match(value):
        ago = parse_duration(value)
        return When(now_ms() - ago, value, ago)
    if not _ABSOLUTE.match(value):
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}; use a duration (30m, 2h, 7d) or a UTC date/time "
            "(2026-11-24, 2026-11-24T17:00, 2026-11-24 17:00:00+01:00)"
        )
    try:
        parsed = dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        why = "its zone offset must be under 24 hours" if "offset" in str(exc) else str(exc)
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: {why}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if parsed.year < 1970:
        # No run starts before the epoch its times count from; and a period reaching back from year 1
        # (stats' 24 hours before --until 0001-01-01) ended in `ValueError: year 0 is out of range`.
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: before 1970, when no run can start")
    return When(int(parsed.timestamp() * 1000), value)


def time_range(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """``(since_ms, until_ms)`` from ``--since``/``--until``; an empty range is a one-line error."""
    since = args.since.ms if getattr(args, "since", None) else None
    until = args.until.ms if getattr(args, "until", None) else None
    if since is not None and until is not None and since >= until:
        raise CLIError(f"--since {args.since.text} is not before --until {args.until.text}")
    return since, until


def add_time_range(
    parser: argparse.ArgumentParser, what: str = "runs started", since: str | None = None
) -> None:
    default = f" (default {since})" if since else ""
    parser.add_argument(
        "--since",
        type=parse_when,
        default=parse_when(since) if since else None,
        metavar="WHEN",
        help=f"only {what} at or after WHEN: a duration ago (30m, 2h, 7d) or a UTC time "
        f"(2026-11-24, 2026-11-24T17:00){default}",
    )
    parser.add_argument(
        "--until", type=parse_when, metavar="WHEN", help=f"only {what} before WHEN (same forms; default now)"
    )


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def utc_time(ms: int | None, short: bool = False) -> str:
    """A time as the CLI prints it: UTC with an explicit ``Z``, the same instant ``--json`` gives
    (``2026-11-24 17:37:15Z``; ``short``: ``11-24 17:37Z``)."""
    if ms is None:
        return "-"
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%m-%d %H:%MZ" if short else "%Y-%m-%d %H:%M:%SZ")


local_time = utc_time  # the older name (doctor, gc); every time shown is UTC


# Characters a terminal acts on rather than shows: C0 and C1 controls (ESC starts a sequence that can set
# the window title, clear the screen, write the clipboard), DEL, and the bidi controls that reorder what
# is shown. Names in the store are whatever the agent passed (a tool name a model chose), so they are
# shown escaped, as Python writes them.
_SHOWN_ESCAPED = {
    c: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(chr(c), f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}")
    for c in (
        *range(0x20),
        *range(0x7F, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
}


def printable(text: str) -> str:
    """``text`` with what would drive the terminal (controls, bidi overrides) escaped, for humans."""
    return text.translate(_SHOWN_ESCAPED)


def shown(text: str) -> str:
    """``text`` to put in rich markup: printable, and its brackets taken as text, not as markup."""
    from rich.markup import escape

    return escape(printable(text))


def plural(n: int | float | None, word: str, many: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``1 retry``, ``3 retries``, ``1,024 LLM calls``."""
    count = fmt_num(n)
    if n == 1:
        return f"{count} {word}"
    if many is None:
        many = word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else word + "s"
    return f"{count} {many}"


def fmt_mean(value: float | None, digits: int = 1) -> str:
    """A mean with a fixed number of decimals, so a column of them reads alike (``0.0``, ``21.3``)."""
    return "-" if value is None else f"{value:,.{digits}f}"


def fmt_duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, secs = divmod(ms / 1000, 60)
    return f"{int(minutes)}m {secs:04.1f}s"


def fmt_span(ms: int) -> str:
    """A window length: 86400000 -> 24h, 604800000 -> 7d."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms >= size and ms % size == 0 and not (unit == "d" and ms < 2 * size):
            return f"{ms // size}{unit}"
    return f"{ms / 1000:g}s"


def fmt_usd(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    if abs(value) < 0.01:  # two significant digits: $0.0097, $0.000015 (not $0.0000, which reads as none)
        return f"${value:.{max(4, 1 - math.floor(math.log10(abs(value))))}f}"
    return f"${value:.2f}"


def fmt_num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def jsonable_run(run: dict[str, Any]) -> dict[str, Any]:
    out = dict(run)
    out["created_at"] = iso(run.get("created_at_ms"))
    out["ended_at"] = iso(run.get("ended_at_ms"))
    return out


def print_json(obj: Any) -> None:
    def default(o: Any) -> Any:
        return str(o)

    def clean(o: Any) -> Any:  # JSON has no Infinity
        if isinstance(o, float) and (math.isinf(o) or math.isnan(o)):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        return o

    sys.stdout.write(json.dumps(clean(obj), indent=2, ensure_ascii=False, default=default) + "\n")


@dataclass
class Context:
    """Per-invocation state: the configuration, the store target, a console."""

    store_arg: str | None = None
    config_path: str | None = None
    _config: Config | None = None
    _store: Store | None = None
    _console: Any = None
    opened: list[Store] = field(default_factory=list)

    @property
    def config(self) -> Config:
        if self._config is None:
            overrides = {"store": parse_store_arg(self.store_arg)} if self.store_arg is not None else None
            self._config = load(overrides, self.config_path)
        return self._config

    @property
    def target(self) -> Target | None:
        return resolve(self.config.get("store"))

    def require_target(self) -> Target:
        target = self.target
        if target is None:
            source = self.config.source("store")
            raise CLIError(
                f"the run store is disabled (store: false, from {source}); pass --store PATH_OR_URL"
            )
        return target

    def store(self, create: bool = False, writer: bool = False, migrate: bool = True) -> Store:
        """The store, opened once. ``writer``: the command deletes or writes (``gc``), so a store of a newer
        schema, which this agent-otel cannot safely modify, is refused as it is for the SDK. Without
        ``migrate``: read as it is, read-only (``gc --dry-run`` changes nothing)."""
        if self._store is None:
            target = self.require_target()
            try:
                self._store = open_store(target, create=create, writer=writer, migrate=migrate)
            except StoreError as exc:
                if "no run store at" in str(exc):
                    raise CLIError(str(exc)) from None
                hint = damage_hint(str(exc), target)
                raise CLIError(f"cannot open the run store at {target.display}: {exc}{hint}") from None
            self.opened.append(self._store)
        return self._store

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            # A terminal is measured (COLUMNS wins, as everywhere); a pipe or file gets wide lines unless
            # COLUMNS says otherwise.
            width = None if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit() else 160
            self._console = Console(width=width, highlight=False, soft_wrap=False)
        return self._console

    def close(self) -> None:
        for store in self.opened:
            store.close()
        self.opened.clear()
        self._store = None


def parse_store_arg(value: str) -> Any:
    return False if value.strip().lower() in ("false", "off", "none", "0") else value


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def add_agent(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", metavar="A", type=agent_name, help="only runs of this agent")


def agent_name(value: str) -> str:
    """``--agent`` in Unicode NFC, as the SDK records agent names (``conventions.nfc``, not imported
    here: the CLI starts without OpenTelemetry's modules)."""
    import unicodedata

    return value if value.isascii() else unicodedata.normalize("NFC", value)


def store_error(exc: StoreError) -> CLIError:
    return CLIError(str(exc))


#: How many of the store's agent names the line about an unknown ``--agent`` lists.
KNOWN_AGENTS_SHOWN = 10


def unknown_agent(store: Store, agent: str | None) -> str | None:
    """None when ``agent`` has runs in the store (or no ``--agent`` was given, or the store has no runs at
    all); else one line naming it and
    the agents the store does know. A misspelt ``--agent`` otherwise reads as an agent with no runs: drift
    said "not enough data" and exited 0, so a cron job watching a typo never alerted. Called only when a
    command found nothing, so a normal answer costs no query."""
    if agent is None or store.query("SELECT 1 AS hit FROM agent_runs WHERE agent = ? LIMIT 1", [agent]):
        return None
    if store.has_table("agent_run_summaries") and store.query(
        "SELECT 1 AS hit FROM agent_run_summaries WHERE agent = ? LIMIT 1", [agent]
    ):
        return None  # its runs were deleted by retention, their hourly figures are still there
    # The distinct names by a walk of the (agent, created_at) index, one look-up per name: DISTINCT would
    # read every run of the first agents at a million runs.
    rows = store.query(
        "WITH RECURSIVE names(name) AS (SELECT min(agent) FROM agent_runs UNION ALL "
        "SELECT (SELECT min(agent) FROM agent_runs WHERE agent > names.name) FROM names "
        f"WHERE names.name IS NOT NULL) SELECT name FROM names WHERE name IS NOT NULL "
        f"LIMIT {KNOWN_AGENTS_SHOWN + 1}"
    )
    names = [printable(str(r["name"])) for r in rows]
    if not names:  # a new store, before its first run: no agent is known, so none is misspelt
        return None
    listed = ", ".join(names[:KNOWN_AGENTS_SHOWN]) + (", ..." if len(names) > KNOWN_AGENTS_SHOWN else "")
    return f"no run of agent {printable(agent)!r} in the store; its agents: {listed}"


def note_unknown_agent(store: Store, agent: str | None) -> None:
    """An empty listing is a right answer for a known agent; for a misspelt one, say so on stderr (stdout,
    the listing or its JSON, stays what scripts parse)."""
    if unknown := unknown_agent(store, agent):
        sys.stderr.write(f"agent-otel: note: {unknown}\n")

"""The ``agent-otel`` command: read the local run store from the terminal.

One module per subcommand, listed in :data:`COMMANDS`; each has ``HELP``, ``add_arguments(parser)`` and
``run(args, ctx) -> exit status``. Adding a command (``replay``) is one module plus one name here.
Exit status: 0 ok, 1 drift found (``drift``) or a diverging replay (``replay``), 2 an error (printed as one
line, no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from agent_otel._version import __version__

COMMANDS: tuple[str, ...] = (
    "demo",
    "runs",
    "tail",
    "show",
    "stats",
    "drift",
    "replay",
    "export",
    "doctor",
    "gc",
    "stack",
    "completion",
)

PROG = "agent-otel"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``only`` the parser of one command: the others' modules are not imported
    (each command imports what it needs, so starting one costs only its own imports)."""
    parser = _Parser(
        prog=PROG,
        description="Answer, from the local run store: which tools ran in which order, with which args, "
        "what came back, which versions ran, why each run stopped, and whether behaviour drifts.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _global_options(parser, None)
    # The same options after the command (`agent-otel runs --store x.db`) win over those before it.
    common = _Parser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS if only is None else (only,):
        module = _command(name)
        cmd = sub.add_parser(
            name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP), parents=[common]
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--store",
        metavar="PATH_OR_URL",
        default=default,
        help="run store to use: a SQLite path or postgresql:// URL (default: the `store` config, "
        "else $AGENT_OTEL_HOME/agent-otel.db)",
    )
    parser.add_argument(
        "--config", metavar="FILE", default=default, help="YAML config file (default: $AGENT_OTEL_CONFIG)"
    )


def _command(name: str) -> Any:
    return importlib.import_module(f"agent_otel.cli.{name.replace('-', '_')}")


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (skipping the global options and their values), if it is one and
    nothing before it asks for help or the version; None otherwise (the whole parser then answers)."""
    takes_value = {"--store", "--config"}
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif arg.startswith("-"):
            if arg.split("=", 1)[0] not in takes_value:
                return None  # --help, --version, or an option argparse should report
        else:
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:
        sys.stdout.write(f"{PROG} {__version__}\n")
        return 0
    parser = build_parser(only=_command_in(argv))
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's parser, so the error points to the command's --help
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")

    from agent_otel.cli.common import EXIT_ERROR, CLIError, guard_stdout
    from agent_otel.cli.common import Context as CommandContext
    from agent_otel.config import ConfigError
    from agent_otel.store import StoreError

    guard_stdout()
    # Not a local named `Context`: `replay --call` runs the user's agent under this frame, and AG2's
    # dependency injection (fast_depends) resolves its string annotation "Context" through the callers'
    # frames, where this class would shadow AG2's and break every AG2 tool call.
    ctx = CommandContext(store_arg=args.store, config_path=args.config)
    try:
        return int(args._module.run(args, ctx) or 0)
    except (CLIError, ConfigError, StoreError) as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:
        # `agent-otel export | head`: the reader went away; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if os.environ.get("AGENT_OTEL_DEBUG"):
            raise
        if type(exc).__module__.startswith("psycopg"):  # the database failed a read: say so, in one line
            from agent_otel.store.db import database_error

            sys.stderr.write(f"{PROG}: error: {database_error(exc, ctx.target)}\n")
            return EXIT_ERROR
        if type(exc).__module__ == "sqlite3":  # a damaged page met while reading, as one line with advice
            from agent_otel.cli.common import damage_hint

            where = ctx.target.display if ctx.target is not None else "the run store"
            line = f"reading the run store at {where} failed ({exc}){damage_hint(str(exc), ctx.target)}"
            sys.stderr.write(f"{PROG}: error: {line}\n")
            return EXIT_ERROR
        sys.stderr.write(
            f"{PROG}: error: {type(exc).__name__}: {exc} (set AGENT_OTEL_DEBUG=1 for a traceback)\n"
        )
        return EXIT_ERROR
    finally:
        ctx.close()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

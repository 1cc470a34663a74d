"""``agent-otel replay RUN_ID --call package.module:function``: run the agent again on the recorded input.

Every tool call is served from the run's snapshots (nothing is sent twice), LLM calls run live, and the
report names the first divergent tool call, the calls matched, and the stop reason then and now.
Exit status: 0 the replay took the recorded path, 1 it diverged, 2 an error (unknown run, no snapshots,
expired snapshots, a snapshot key problem, a function that cannot be imported).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import sys
from typing import Any

from agent_otel.cli.common import EXIT_DRIFT, EXIT_OK, CLIError, Context, add_json, print_json, printable

HELP = "replay a recorded run with tool results served from snapshots; exit 1 if it diverges"
DESCRIPTION = (
    "Call FUNCTION with the recorded input of RUN_ID under agent_otel.replay(): each tool call is "
    "served from the recorded snapshots instead of executing, LLM calls run live. Prints the first "
    "divergent tool call, the calls matched and the stop reason then and now. Exit status 0 when the "
    "replay takes the recorded path, 1 when it diverges, 2 on error."
)
EXIT_DIVERGED = EXIT_DRIFT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix of one")
    parser.add_argument(
        "--call",
        metavar="package.module:function",
        required=True,
        help="the agent entry point, called with the recorded input (the current directory is importable)",
    )
    parser.add_argument(
        "--mode",
        choices=("strict", "lenient"),
        default="strict",
        help="strict: stop at the first divergence (default); lenient: serve recorded calls by tool and "
        "args hash, refuse unknown ones",
    )
    add_json(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    import agent_otel
    from agent_otel import sdk
    from agent_otel.replay import Replay, ReplayError, load

    store = ctx.store()
    try:
        recording = load(args.run_id, store=store, config=ctx.config)
        value = recording.input
    except ReplayError as exc:
        raise CLIError(str(exc)) from None
    ctx.close()
    fn = _import(args.call)
    if sdk.installation() is None:  # the module may have called setup() itself; that one is kept
        overrides = {"store": ctx.config.get("store")} if ctx.store_arg is not None else {}
        agent_otel.setup(config=ctx.config_path, **overrides)
    session = Replay(recording.run_id, mode=args.mode, config=ctx.config)
    session.recording = recording
    try:
        with session:
            _call(fn, value, recording.input_sha is not None)
    except (Exception, SystemExit):
        pass  # an exception that ended the agent, or an entry point's sys.exit(), is in the report (error)
    finally:
        agent_otel.shutdown()  # the replay run goes to the store before the report is printed
    report = session.report
    if args.json:
        print_json(report.to_dict())
    else:
        sys.stdout.write("".join(printable(line) + "\n" for line in report.render().splitlines()))
    return EXIT_DIVERGED if report.diverged else EXIT_OK


def _import(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CLIError(f"--call takes package.module:function, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the project's own modules are importable
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise CLIError(f"cannot import {module_name} for --call: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CLIError(f"{module_name} has no {attr!r} (from --call {spec})") from None
    if not callable(obj):
        raise CLIError(f"--call {spec} is not callable")
    from agent_otel import snapshots

    snapshots.main_stands_in(module_name)  # a run recorded by `python <that file>` raised __main__'s classes
    return obj


def _call(fn: Any, value: Any, has_input: bool) -> Any:
    """``fn(input)``; ``fn(**input)`` when the input is the mapping of several parameters (as ``@agent``
    records it); ``fn()`` when the run had no input. A coroutine is run to completion."""
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    if not has_input:
        result = fn()
    elif (
        sig is not None
        and isinstance(value, dict)
        and not _binds(sig, (value,), {})
        and _binds(sig, (), value)
    ):
        result = fn(**value)
    else:
        result = fn(value)
    if inspect.isawaitable(result):
        return asyncio.run(_wait(result))
    return result


def _binds(sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    try:
        sig.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


async def _wait(awaitable: Any) -> Any:
    return await awaitable

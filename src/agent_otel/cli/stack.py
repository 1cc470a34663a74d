"""``agent-otel stack init DIR``: write the local stack (collector, Tempo, Prometheus, Grafana) to DIR.

The files are the repository's own: the wheel carries ``docker-compose.yml`` and the ``collector/``,
``prometheus/``, ``tempo/`` and ``grafana/`` directories under ``agent_otel/_stack`` (copied at build time,
``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml), so a pip install has the same stack
as a checkout. An editable install (``make install``) reads them from the checkout itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from agent_otel.cli.common import CLIError, Context

HELP = "write the local stack (docker compose: collector, Tempo, Prometheus, Grafana) to a directory"
DESCRIPTION = (
    "Write docker-compose.yml and the collector/, prometheus/, tempo/ and grafana/ configs that come with "
    "this agent-otel to DIR; then `docker compose up -d` in DIR and open Grafana at http://localhost:3000."
)

#: What the stack is, relative to the repository root; pyproject.toml force-includes exactly these.
ENTRIES = ("docker-compose.yml", "collector", "prometheus", "tempo", "grafana")
PACKAGED = "_stack"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stack_command", metavar="ACTION")
    sub.required = True
    init = sub.add_parser("init", help="write the stack's files to DIR", description=DESCRIPTION)
    init.add_argument("dir", metavar="DIR", help="directory to write to (created if missing)")
    init.add_argument(
        "--force", action="store_true", help="overwrite files in DIR that differ from the bundled ones"
    )


def source() -> Traversable:
    """Where this installation's stack files are: in the wheel, else (editable install) the checkout."""
    packaged = resources.files("agent_otel") / PACKAGED
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[3]
    if all((checkout / name).exists() for name in ENTRIES) and (checkout / "pyproject.toml").is_file():
        return checkout
    raise CLIError(
        "this agent-otel installation has no stack files (they ship in the wheel); "
        "get them from the repository: docker-compose.yml, collector/, prometheus/, tempo/, grafana/"
    )


def files(root: Traversable | None = None) -> dict[str, bytes]:
    """Every stack file, by its path relative to the stack directory (``grafana/dashboards/runs.json``)."""
    root = source() if root is None else root
    out: dict[str, bytes] = {}

    def walk(node: Traversable, rel: str) -> None:
        if node.is_dir():
            for child in node.iterdir():
                if child.name != "__pycache__":
                    walk(child, f"{rel}/{child.name}")
        else:
            out[rel] = node.read_bytes()

    for name in ENTRIES:
        walk(root / name, name)
    return dict(sorted(out.items()))


def _open_directories(target: Path, wanted: dict[str, bytes]) -> None:
    """Create the stack's directories readable and searchable by everyone, whatever the umask.

    docker-compose.yml mounts ``prometheus/rules`` and the ``grafana`` directories into containers whose
    processes run as their own users (Prometheus as nobody, Grafana as 472): under a umask of 077 or 027
    such a directory was 0700 or 0750, so Prometheus found no rule file (no alert, no error) and Grafana no
    datasource or dashboard. A directory a previous ``stack init`` left so is opened up too.
    """
    target.mkdir(parents=True, exist_ok=True)  # its own mode is yours: Docker mounts what is inside it
    for path in sorted({p for rel in wanted for p in (target / rel).parents if target in p.parents}):
        path.mkdir(exist_ok=True)
        mode = path.stat().st_mode & 0o7777
        if mode & 0o755 != 0o755:
            with contextlib.suppress(OSError):  # not ours to change: left as it is
                os.chmod(path, mode | 0o755)


def run(args: argparse.Namespace, ctx: Context) -> int:
    target = Path(args.dir).expanduser()
    wanted = files()
    if target.exists() and not target.is_dir():
        raise CLIError(f"{target} exists and is not a directory")
    differ = []
    for rel, data in wanted.items():
        path = target / rel
        if path.is_file() and path.read_bytes() != data:
            differ.append(rel)
    if differ and not args.force:
        shown = ", ".join(differ[:4]) + (f" and {len(differ) - 4} more" if len(differ) > 4 else "")
        raise CLIError(f"{target} has other versions of {shown}; pass --force to overwrite them")
    written = 0
    _open_directories(target, wanted)
    for rel, data in wanted.items():
        path = target / rel
        if path.is_file() and path.read_bytes() == data:
            continue
        # Readable by the containers' own users (Grafana, Prometheus and Tempo do not run as you).
        path.write_bytes(data)
        os.chmod(path, 0o644)
        written += 1
    console = ctx.console
    unchanged = len(wanted) - written
    console.print(
        f"wrote {written} file{'s' if written != 1 else ''} of the agent-otel stack to {target}"
        + (f" ({unchanged} already up to date)" if unchanged else "")
    )
    console.print(
        f"next: cd {target} && docker compose up -d, then open Grafana at http://localhost:3000 and send "
        "OTLP to http://localhost:4318 (http/protobuf) or :4317 (grpc, the grpc extra)"
    )
    return 0

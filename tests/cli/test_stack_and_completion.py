"""`agent-otel stack init` writes the repository's stack; `agent-otel completion` works in real shells."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from agent_otel.cli import build_parser, completion, stack
from tests.cli.conftest import CLI, COMMAND, one_line_error
from tests.helpers import require_binary

ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_stack_init_writes_the_repository_files(cli: CLI, tmp_path: Path):
    target = tmp_path / "stack"
    proc = cli("stack", "init", str(target))
    assert proc.returncode == 0, proc.stderr
    written = _tree(target)
    repository = {}
    # A directory entry's files from that directory only: reading the whole checkout (.venv, .venvs) for
    # each one took over 300 s in a loaded CI run.
    for entry in stack.ENTRIES:
        path = ROOT / entry
        repository.update(
            {entry: path.read_bytes()}
            if path.is_file()
            else {f"{entry}/{k}": v for k, v in _tree(path).items()}
        )
    repository = {k: v for k, v in repository.items() if "__pycache__" not in k}
    assert written == repository and "docker-compose.yml" in written
    assert all(oct(p.stat().st_mode & 0o777) == "0o644" for p in target.rglob("*") if p.is_file())
    assert f"wrote {len(written)} files" in proc.stdout and "docker compose up -d" in proc.stdout

    again = cli("stack", "init", str(target))
    assert again.returncode == 0 and "wrote 0 files" in again.stdout and "already up to date" in again.stdout

    compose = target / "docker-compose.yml"
    compose.write_text("# mine\n")
    line = one_line_error(cli("stack", "init", str(target)))
    assert "docker-compose.yml" in line and "--force" in line
    assert compose.read_text() == "# mine\n"  # left alone
    forced = cli("stack", "init", str(target), "--force")
    assert forced.returncode == 0 and "wrote 1 file " in forced.stdout
    assert compose.read_bytes() == (ROOT / "docker-compose.yml").read_bytes()


def test_the_stack_entries_cover_every_file_the_compose_file_mounts():
    """When the stack gains a directory, `stack init` (and the wheel's force-include) must carry it."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounted = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume if isinstance(volume, str) else volume.get("source", "")
            source = source.split(":", 1)[0]
            if source.startswith("./"):
                mounted.add(source[2:])
    assert mounted, "the compose file mounts no local files?"
    for path in mounted:
        assert path.split("/", 1)[0] in stack.ENTRIES, path
        assert (ROOT / path).exists(), path


def test_stack_init_under_a_strict_umask_leaves_the_mounted_directories_readable_by_the_containers(
    cli: CLI, tmp_path: Path
):
    """docker-compose.yml mounts prometheus/rules and the grafana directories into containers that run as
    their own users (Prometheus as nobody, Grafana as 472). Under a umask of 077 they were created 0700:
    Prometheus found no rule file (no alert, and no error) and Grafana no datasource or dashboard."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounted_dirs = {
        v.split(":", 1)[0][2:]
        for s in compose["services"].values()
        for v in s.get("volumes", [])
        if isinstance(v, str) and v.startswith("./") and (ROOT / v.split(":", 1)[0]).is_dir()
    }
    assert {"prometheus/rules", "grafana/dashboards"} <= mounted_dirs
    target = tmp_path / "stack"
    left = target / "grafana" / "dashboards"  # as an earlier `stack init` under that umask left it
    left.mkdir(parents=True, mode=0o700)
    old = os.umask(0o077)
    try:
        proc = cli("stack", "init", str(target))
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    for rel in mounted_dirs:
        for directory in (target / rel, *(target / rel).parents):
            if target in directory.parents:
                assert directory.stat().st_mode & 0o755 == 0o755, (rel, oct(directory.stat().st_mode))
        assert all(f.stat().st_mode & 0o444 == 0o444 for f in (target / rel).rglob("*") if f.is_file())


def test_stack_init_into_a_file_is_one_error_line(cli: CLI, tmp_path: Path):
    target = tmp_path / "file"
    target.write_text("x")
    assert "is not a directory" in one_line_error(cli("stack", "init", str(target)))


def _script(shell: str) -> str:
    proc = subprocess.run(
        [*COMMAND, "completion", shell], capture_output=True, text=True, timeout=60, check=True
    )
    return proc.stdout


def _bash_complete(script: str, words: list[str]) -> list[str]:
    """COMPREPLY for the command line ``words`` (the last one being completed), in a real bash."""
    program = (
        f"{script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
        "_agent_otel; printf '%s\\n' \"${COMPREPLY[@]}\""
    )
    proc = subprocess.run(
        ["bash", "--norc", "-c", program], capture_output=True, text=True, timeout=30, check=True
    )
    return proc.stdout.split()


def test_bash_completion_knows_commands_options_and_values():
    script = _script("bash")
    assert set(_bash_complete(script, ["agent-otel", ""])) >= {
        "demo",
        "runs",
        "tail",
        "show",
        "stack",
        "--store",
    }
    assert _bash_complete(script, ["agent-otel", "ta"]) == ["tail"]
    assert set(_bash_complete(script, ["agent-otel", "runs", "--s"])) == {
        "--store", "--stop-reason", "--stop-class", "--since"
    }  # fmt: skip
    assert _bash_complete(script, ["agent-otel", "runs", "--stop-reason", "loop"]) == ["loop_detected"]
    assert _bash_complete(script, ["agent-otel", "--store", "x.db", "runs", "--stop-class", "f"]) == [
        "failure"
    ]
    assert _bash_complete(script, ["agent-otel", "demo", "--scenario", "w"]) == ["wrong-email"]
    assert _bash_complete(script, ["agent-otel", "completion", "z"]) == ["zsh"]
    assert _bash_complete(script, ["agent-otel", "stack", ""])[-1] == "init"
    # an option's value is not mistaken for the command
    assert "--last" in _bash_complete(script, ["agent-otel", "--config", "runs", "tail", "--l"])


def test_zsh_loads_the_script_and_registers_the_completion():
    zsh = require_binary("zsh", "make prereqs (scripts/prereqs.d/50-shells.sh)")
    script = _script("zsh")
    program = f"autoload -U compinit && compinit -u -D\n{script}\nprint -r -- ${{_comps[agent-otel]}}"
    proc = subprocess.run(
        [zsh, "-f", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "HOME": "/nonexistent"},
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "_agent_otel" in proc.stdout


def test_fish_completes_commands_and_values():
    fish = require_binary("fish", "make prereqs (scripts/prereqs.d/50-shells.sh)")
    script = _script("fish")

    def complete(line: str) -> list[str]:
        proc = subprocess.run(
            [fish, "--no-config", "-c", f"{script}\ncomplete -C {line!r}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        return [line.split("\t")[0] for line in proc.stdout.splitlines()]

    assert "tail" in complete("agent-otel ta")
    assert complete("agent-otel runs --stop-class f") == ["failure"]
    assert "loop_detected" in complete("agent-otel runs --stop-reason ")
    assert "init" in complete("agent-otel stack ")
    assert set(complete("agent-otel completion ")) >= {"bash", "zsh", "fish"}


def test_every_command_and_option_is_in_the_readme():
    """Each command has its paragraph (``**`agent-otel NAME ...`**``) naming every option it takes; the
    shared ones (--store, --config, --json) are documented once for all."""
    readme = (ROOT / "README.md").read_text()

    def check(command: str, level: completion.Level) -> None:
        head = f"**`agent-otel {command}"
        assert head in readme, command
        section = readme.split(head, 1)[1].split("\n**`agent-otel ", 1)[0]
        for option in level.options:
            flag = max(option.flags, key=len)
            if flag not in ("--help", "--store", "--config", "--json"):
                assert flag in section, (command, flag)
        for sub, (_, sub_level) in level.commands.items():
            check(f"{command} {sub}", sub_level)

    for name, (_, level) in completion.describe(build_parser()).commands.items():
        check(name, level)
    assert "`--store` and `--config`" in readme and "Every read command takes `--json`" in readme

"""``agent-otel replay RUN_ID --call package.module:function`` in a subprocess: output and exit codes."""

from __future__ import annotations

import json
import subprocess

import agent_otel
from agent_otel.hashing import sha
from tests.replay import support_agent
from tests.replay.conftest import KEY_ENV
from tests.replay.test_retention_encryption import age_everything, fernet_key

AGENT = "tests.replay.support_agent"
WRONG, RIGHT = support_agent.CUSTOMERS[0]["email"], support_agent.CUSTOMERS[1]["email"]


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("agent-otel: error: ")
    return lines[0]


def test_replay_exit_codes_and_report(rig, recorded, tmp_path):
    original = recorded()
    agent_otel.shutdown()
    outbox = tmp_path / "outbox.jsonl"
    env = {"AGENT_OTEL_TEST_OUTBOX": str(outbox)}
    send_args = {"subject": "Re: T-77", "body": "Your order O-1001 is shipped (DHL)."}

    same = rig.cli("replay", original, "--call", f"{AGENT}:handle", env=env)
    assert same.returncode == 0, same.stderr
    assert "MATCH: the replay made the recorded tool calls in the recorded order" in same.stdout
    assert "matched in order 3" in same.stdout and "then completed   now completed" in same.stdout

    fixed = rig.cli("replay", original[:10], "--call", f"{AGENT}:handle_fixed", env=env)
    assert fixed.returncode == 1, fixed.stderr
    out = fixed.stdout
    assert "DIVERGED at tool call 3:" in out
    assert f"recorded  step 4  send_email  args {sha({'to': WRONG, **send_args})}" in out
    assert f"now       step 4  send_email  args {sha({'to': RIGHT, **send_args})}" in out
    assert "then completed   now policy_denied" in out
    assert "then model gpt-4o prompt v12 tools 3   now model gpt-4o prompt v13 tools 3" in out

    lenient = rig.cli(
        "replay", original, "--call", f"{AGENT}:handle_fixed", "--mode", "lenient", "--json", env=env
    )
    assert lenient.returncode == 1, lenient.stderr
    report = json.loads(lenient.stdout)
    assert (report["run_id"], report["mode"], report["matched"], report["steps_matched"]) == (
        original,
        "lenient",
        False,
        2,
    )
    assert report["divergence"]["recorded"]["args_sha"] == sha({"to": WRONG, **send_args})
    assert report["divergence"]["now"]["args_sha"] == sha({"to": RIGHT, **send_args})
    assert report["stop_reason"] == {"then": "completed", "now": "error"}
    assert report["error"].startswith("UnrecordedToolCall: tool 'send_email'")

    assert not outbox.exists()  # three replays, not one e-mail
    shown = json.loads(rig.cli("show", report["replay_run_id"], "--json").stdout)
    assert shown["run"]["replay_of"] == original and shown["run"]["stop_reason"] == "error"
    # A replay run has no snapshots of its own; it said "recorded with replay.record: false".
    again = rig.cli("replay", report["replay_run_id"], "--call", f"{AGENT}:handle", env=env)
    assert f"is a replay of run {original}, and replays are not recorded: replay {original} instead" in (
        one_line_error(again)
    )


def test_an_agent_with_several_parameters_gets_them_back_by_name(rig, tmp_path):
    rig.start()
    support_agent.handle_with_priority(dict(support_agent.TICKET), priority="high")
    original = rig.last_run_id()
    agent_otel.shutdown()
    outbox = tmp_path / "outbox.jsonl"
    proc = rig.cli(
        "replay",
        original,
        "--call",
        f"{AGENT}:handle_with_priority",
        env={"AGENT_OTEL_TEST_OUTBOX": str(outbox)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "matched in order 3" in proc.stdout and not outbox.exists()


def test_replay_errors_exit_2(rig, recorded, monkeypatch):
    original = recorded()
    unrecorded = recorded(replay={"record": False})
    unsealed = recorded(replay={"require_encryption": True})  # and no key: nothing recorded
    agent_otel.shutdown()
    call = ("--call", f"{AGENT}:handle")

    assert "no run matches 'feedbeef'" in one_line_error(rig.cli("replay", "feedbeef", *call))
    assert f"run {unrecorded} has no tool-result snapshots" in one_line_error(
        rig.cli("replay", unrecorded, *call)
    )
    assert "with replay.require_encryption: true and no usable key" in one_line_error(
        rig.cli("replay", unsealed, *call)
    )
    assert "cannot import tests.replay.nope" in one_line_error(
        rig.cli("replay", original, "--call", "tests.replay.nope:handle")
    )
    assert "has no 'missing'" in one_line_error(rig.cli("replay", original, "--call", f"{AGENT}:missing"))
    proc = rig.cli("replay", original)
    assert proc.returncode == 2 and "--call" in proc.stderr

    age_everything(rig, 20)
    assert "have expired: retention.tool_snapshot_days is 14" in one_line_error(
        rig.cli("replay", original, *call)
    )
    keep = rig.home / "keep.yaml"
    keep.write_text("retention: {tool_snapshot_days: 30}\n")
    assert rig.cli("replay", original, *call, "--config", str(keep)).returncode == 0


def test_encrypted_and_async_recordings_from_the_command_line(rig, recorded, monkeypatch, tmp_path):
    key = fernet_key()
    monkeypatch.setenv(KEY_ENV, key)
    sync_run = recorded()
    rig.start()
    import asyncio

    asyncio.run(support_agent.handle_async(dict(support_agent.TICKET)))
    async_run = rig.last_run_id("support-agent-async")
    agent_otel.shutdown()
    outbox = tmp_path / "outbox.jsonl"

    error = one_line_error(rig.cli("replay", sync_run, "--call", f"{AGENT}:handle"))
    assert f"are encrypted (key {key_id_of(key)}); set {KEY_ENV}" in error
    env = {KEY_ENV: key, "AGENT_OTEL_TEST_OUTBOX": str(outbox)}
    assert rig.cli("replay", sync_run, "--call", f"{AGENT}:handle", env=env).returncode == 0
    proc = rig.cli("replay", async_run, "--call", f"{AGENT}:handle_async", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = rig.cli("replay", async_run, "--call", f"{AGENT}:handle_async_fixed", env=env)
    assert proc.returncode == 1 and "DIVERGED at tool call 3" in proc.stdout
    assert not outbox.exists()


def key_id_of(key: str) -> str:
    from agent_otel.snapshots import key_id

    return key_id(key.encode())


def test_replay_after_gc_deleted_the_snapshots_says_they_expired(rig, recorded):
    original = recorded()
    agent_otel.shutdown()
    call = ("--call", f"{AGENT}:handle")
    age_everything(rig, 5)
    short = rig.home / "short.yaml"
    short.write_text("retention: {tool_snapshot_days: 3}\n")
    gc = rig.cli("gc", "--json", "--config", str(short))
    assert gc.returncode == 0 and json.loads(gc.stdout)["deleted"]["agent_snapshot_runs"] == 1, gc.stderr

    # Under the retention gc ran with, and under today's default (14 days) that would still keep them.
    for config in (("--config", str(short)), ()):
        error = one_line_error(rig.cli("replay", original, *call, *config))
        assert f"the snapshots of run {original} (recorded " in error and "have expired" in error
        assert "gc has deleted them" in error or "were deleted by gc" in error
        assert "replay.record: false" not in error
    assert "retention.tool_snapshot_days was 3 then" in one_line_error(rig.cli("replay", original, *call))


SCRIPT_AGENT = """
import sys
import agent_otel

class OutOfStock(Exception):
    def __init__(self, sku):
        super().__init__(f"{sku} is out of stock")
        self.sku = sku

@agent_otel.tool(name="reserve")
def reserve(sku):
    raise OutOfStock(sku)

@agent_otel.tool(name="backorder")
def backorder(sku):
    return f"backordered {sku}"

@agent_otel.agent(name="shop")
def handle(sku):
    try:
        return reserve(sku)
    except OutOfStock as exc:
        return backorder(exc.sku)

def main(sku):
    print(handle(sku))
    sys.exit(0)  # a command-line entry point, given to --call as it is

if __name__ == "__main__":
    agent_otel.setup(store=sys.argv[1], instrument=False, config={"exporter.probe_local": False})
    print(handle("sku-1"))
"""


def test_a_run_recorded_by_a_script_replays_with_the_scripts_own_exception_classes(tmp_path):
    """`python shop.py` records (its classes live in __main__); `agent-otel replay ID --call shop:handle`
    imports the same file as `shop`: a recorded `__main__.OutOfStock` is rebuilt as `shop.OutOfStock`, so
    the agent's own `except OutOfStock` handles it as it did, rather than a RecordedToolError ending the
    replay."""
    import os
    import subprocess
    import sys

    from tests.cli.conftest import COMMAND

    (tmp_path / "shop.py").write_text(SCRIPT_AGENT)
    db = str(tmp_path / "agent-otel.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(AGENT_OTEL_HOME=str(tmp_path / "home"), AGENT_OTEL_PROBE_LOCAL="false")
    recorded = subprocess.run(
        [sys.executable, "shop.py", db], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert recorded.stdout.strip() == "backordered sku-1", recorded.stderr
    runs = subprocess.run(
        [*COMMAND, "--store", db, "runs", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    (run,) = json.loads(runs.stdout)

    def replay_json(call: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMMAND, "--store", db, "replay", run["run_id"], "--call", call, "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    replay = replay_json("shop:handle")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    report = json.loads(replay.stdout)
    assert (report["matched"], report["served"], report["error"]) == (True, 2, None)
    assert report["stop_reason"] == {"then": "completed", "now": "completed"}

    # An entry point that ends with sys.exit(): the report is still printed, with the exit in it (it
    # printed nothing and exited with the agent's own status, 0 here: a "match" no one checked).
    exits = replay_json("shop:main")
    assert exits.returncode == 0, exits.stdout + exits.stderr
    assert exits.stdout.startswith("backordered sku-1\n")  # what the agent printed, then the report
    report = json.loads(exits.stdout[exits.stdout.index("{") :])
    assert (report["matched"], report["error"]) == (True, "SystemExit: 0")


KILLED_AGENT = """
import os, sys, time
import agent_otel
from agent_otel import sdk

@agent_otel.tool(name="reserve")
def reserve(sku):
    return f"reserved {sku}"

@agent_otel.agent(name="shop\x1b]0;title\x07")  # printed escaped, not acted on by the terminal
def handle(sku):
    reserve(sku)
    if os.environ.get("SHOP_HANG"):
        assert sdk.flush(10)
        print(agent_otel.current_run().run_id, flush=True)
        time.sleep(600)  # killed here: the run never ends
    return "done"

if __name__ == "__main__":
    agent_otel.setup(store=sys.argv[1], instrument=False, config={"exporter.probe_local": False})
    handle("sku-1")
"""


def replay(db: str, run_id: str, cwd, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    from tests.cli.conftest import COMMAND

    return subprocess.run(
        [*COMMAND, "--store", db, "replay", run_id[:8], "--call", "shop:handle", *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_replaying_an_abandoned_run_does_not_report_a_match(tmp_path):
    """A run whose process was killed mid-run has no stop reason: its recording ends where the process
    died. A replay that makes its calls and then completes did not "stop for the same reason": it diverged
    (exit 1), and the report says the recorded run never ended rather than MATCH."""
    import os
    import signal
    import sys

    (tmp_path / "shop.py").write_text(KILLED_AGENT)
    db = str(tmp_path / "agent-otel.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(AGENT_OTEL_HOME=str(tmp_path / "home"), AGENT_OTEL_PROBE_LOCAL="false")
    proc = subprocess.Popen(
        [sys.executable, "shop.py", db],
        cwd=tmp_path,
        env={**env, "SHOP_HANG": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, proc.stderr.read() if proc.poll() is not None else "no run id"
        # While its process lives the run may still end: not a match either.
        running = replay(db, run_id, tmp_path, env)
        assert running.returncode == 1, running.stdout + running.stderr
        assert "DIVERGED: the recorded run has not ended (running: no stop has been recorded yet" in (
            running.stdout
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    text = replay(db, run_id, tmp_path, env)
    assert text.returncode == 1, text.stdout + text.stderr
    assert "MATCH" not in text.stdout
    assert "(shop\\x1b]0;title\\x07)" in text.stdout and "\x1b" not in text.stdout, text.stdout
    assert "DIVERGED: the recorded run never ended (abandoned: " in text.stdout, text.stdout
    assert "stop reason  then - (abandoned)   now completed" in text.stdout
    report = json.loads(replay(db, run_id, tmp_path, env, "--json").stdout)
    assert (report["matched"], report["steps_matched"], report["served"]) == (False, 1, 1)
    assert report["stop_reason"] == {"then": None, "now": "completed"}
    assert report["status_then"] == "abandoned"


def test_a_run_id_prefix_typed_in_capitals_replays_as_show_finds_it(rig, recorded, tmp_path):
    """``show`` and ``export`` find a run from a prefix in capitals (ids are lower-case hex); ``replay``
    found the run too, then looked its recording up by the prefix as typed and said it had none
    (`recorded with replay.record: false ...`, exit 2)."""
    original = recorded()
    agent_otel.shutdown()
    env = {"AGENT_OTEL_TEST_OUTBOX": str(tmp_path / "outbox.jsonl")}
    assert json.loads(rig.cli("show", original[:10].upper(), "--json").stdout)["run"]["run_id"] == original
    for given in (original[:10].upper(), original.upper()):
        same = rig.cli("replay", given, "--call", f"{AGENT}:handle", env=env)
        assert same.returncode == 0, same.stderr
        assert f"replay of {original}" in same.stdout and "matched in order 3" in same.stdout


def test_a_blank_store_given_to_replay_is_an_error_not_the_default_store(tmp_path, monkeypatch):
    """Every configuration path refuses a blank store (a variable that was not set: ``store=$STORE``);
    ``agent_otel.replay(run_id, store="")`` read the default store instead, a run of another store."""
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path / "home"))
    for blank in ("", "  "):
        try:
            with agent_otel.replay("0123abcd", store=blank):
                pass
        except agent_otel.ReplayError as exc:
            assert "store is empty" in str(exc)
        else:
            raise AssertionError(f"replay(store={blank!r}) did not refuse the blank store")

"""The GenAI semantic conventions as data: which ``gen_ai.*`` keys exist, which are deprecated, and which
are Required on each span type (from the YAML of semantic-conventions-genai in tests/data/semconv)."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parent / "data" / "semconv"


def _shared() -> Path:
    """``shared/semconv`` next to the repository (next to its main checkout, for a git worktree)."""
    repo = Path(__file__).resolve().parents[1]
    candidates = [repo.parent / "shared" / "semconv"]
    try:
        common = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        if common:
            candidates.append(Path(common).parent.parent / "shared" / "semconv")
    except (OSError, subprocess.SubprocessError):
        pass
    return next((p for p in candidates if p.is_dir()), candidates[0])


#: The same files next to the repository (the shared copy the project's brief names), when present.
SHARED = _shared()


def _load(name: str) -> Any:
    return yaml.safe_load((DATA / "gen-ai" / name).read_text())


@cache
def registry() -> dict[str, dict[str, Any]]:
    """Every attribute of the GenAI registry by key."""
    return {a["key"]: a for a in _load("registry.yaml")["attributes"]}


def deprecated(key: str) -> bool:
    entry = registry().get(key) or {}
    return "deprecated" in entry or entry.get("stability") == "deprecated"


@cache
def _groups() -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for name in ("spans.yaml", "metrics.yaml"):
        for group in _load(name).get("attribute_groups") or ():
            groups[group["id"]] = group.get("attributes") or []
    return groups


def _levels(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """attribute -> requirement level, resolving ref_groups; a later entry without a level keeps the
    earlier one (spans.yaml repeats refs only to mark them sampling-relevant)."""
    levels: dict[str, Any] = {}
    for entry in entries:
        if "ref_group" in entry:
            levels.update(_levels(_groups()[entry["ref_group"]]))
        elif "ref" in entry:
            level = entry.get("requirement_level")
            if level is not None:
                levels[entry["ref"]] = level
            else:
                levels.setdefault(entry["ref"], "recommended")
    return levels


@cache
def span_levels(span_type: str) -> dict[str, Any]:
    for span in _load("spans.yaml")["spans"]:
        if span["type"] == span_type:
            return _levels(span["attributes"])
    raise KeyError(span_type)


def required(span_type: str) -> set[str]:
    return {k for k, level in span_levels(span_type).items() if level == "required"}


def conditionally_required(span_type: str) -> set[str]:
    return {
        k
        for k, level in span_levels(span_type).items()
        if isinstance(level, dict) and "conditionally_required" in level
    }


@cache
def metric(name: str) -> dict[str, Any]:
    for m in _load("metrics.yaml")["metrics"]:
        if m["name"] == name:
            return {**m, "levels": _levels(m.get("attributes") or [])}
    raise KeyError(name)

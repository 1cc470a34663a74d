"""AutoGen's environment (.venvs/autogen: autogen-core pins protobuf~=5.29, older than the main
environment's): the shared integration fixtures."""

from __future__ import annotations

from tests.integrations.conftest import configured, fake_api, guarded, instrument  # noqa: F401

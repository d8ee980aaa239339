"""LocalLifecycle: the lifecycle on a registry directory, returning the same records as through a server."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import text_component

from airssys_web.errors import InvalidName, NotFound
from airssys_web.lifecycle.api import Change, DeployRequest, Lifecycle, Plan
from airssys_web.lifecycle.local import LocalLifecycle
from airssys_web.lifecycle.registry import EmbeddedRegistry


def test_every_operation_returns_records(tmp_path: Path) -> None:
    lifecycle: Lifecycle
    with LocalLifecycle(tmp_path / "reg", actor="tester") as lifecycle:
        change = lifecycle.deploy(DeployRequest("hello", text_component("v1"), version="1.0.0", route="/hello"))
        assert isinstance(change, Change) and change.serving is None and change.warnings == ()
        assert (change.deployment.active_version, change.deployment.route) == ("1.0.0", "/hello")
        canary = lifecycle.deploy(DeployRequest("hello", text_component("v2"), version="2.0.0",
                                                plan=Plan.parse("canary", percent=30)))
        assert (canary.deployment.canary_version, canary.deployment.canary_percent) == ("2.0.0", 30)
        assert lifecycle.promote("hello").deployment.active_version == "2.0.0"
        assert lifecycle.rollback("hello").deployment.active_version == "1.0.0"
        (status,) = lifecycle.components()
        assert status == lifecycle.component("hello")
        assert [v.version for v in status.versions] == ["1.0.0", "2.0.0"] and status.serving is None
        assert status.deployment is not None and status.deployment.active_version == "1.0.0"
        assert {h.actor for h in lifecycle.history("hello")} == {"tester"}
        assert lifecycle.audit() == []  # only changes through the admin API are audited
        assert lifecycle.describe() == f"registry {tmp_path / 'reg'}"
        with pytest.raises(NotFound, match="no canary"):
            lifecycle.promote("hello")
    with pytest.raises(InvalidName):
        DeployRequest("hello", b"", version="latest")


def test_a_registry_it_did_not_open_stays_open(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path) as registry:
        with LocalLifecycle(registry) as lifecycle:
            lifecycle.deploy(DeployRequest("a", text_component("a"), version="1.0.0", route="/a"))
            assert lifecycle.history("a")[0].actor.startswith("cli")
        assert registry.get_deployment("a").active_version == "1.0.0"  # still usable

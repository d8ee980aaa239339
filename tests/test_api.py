"""The lifecycle API's values: plans, deploy requests, and the JSON of every record (one shape each, round-tripped)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from airssys_web.capabilities.grants import Capability
from airssys_web.errors import DeployError, InvalidName
from airssys_web.lifecycle.api import Change, ComponentStatus, DeployRequest, Plan, Serving, Strategy
from airssys_web.lifecycle.registry import AuditEntry, ComponentInfo, Deployment, HistoryEntry, VersionInfo
from airssys_web.lifecycle.settings import VersionSettings

AT = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
SETTINGS = VersionSettings.of(Capability.config("greeting", "hi"), Capability.kv(), timeout=2.5).json_text()
DEPLOYMENT = Deployment("hello", "/hello", "1.0.0", "a" * 64, SETTINGS, None, AT, canary_version="2.0.0",
                        canary_percent=20, canary_sha256="b" * 64, canary_settings_json="{}",
                        auto_rollback="error-rate=5%,window=30s,min-requests=20", nested=True)


def test_plan_parse_defaults_and_validation() -> None:
    assert Plan.parse() == Plan()
    assert Plan.parse("canary").percent == 10
    plan = Plan.parse("blue-green", probe="/a/health", auto_rollback="error-rate=1%")
    assert (plan.strategy, plan.probe, plan.policy_text) == (Strategy.BLUE_GREEN, "/a/health",
                                                             "error-rate=1%,window=30s,min-requests=20")
    for kwargs, needle in [({"strategy": "yolo"}, "unknown strategy"),
                           ({"strategy": "canary", "percent": 0}, "percent"),
                           ({"strategy": "canary", "percent": 101}, "percent"),
                           ({"percent": 5}, "canary only"),
                           ({"probe": "/x"}, "blue-green or canary"),
                           ({"strategy": "blue-green", "probe": "health"}, "probe path")]:
        with pytest.raises(DeployError, match=needle):
            Plan.parse(**kwargs)  # type: ignore[arg-type]


def test_a_deploy_request_is_validated_when_made() -> None:
    request = DeployRequest("hello", b"\0asm", version="1.0.0", route="/hello")
    assert (request.plan, request.settings, request.nested) == (Plan(), VersionSettings(), False)
    assert "asm" not in repr(request)  # the bytes are not shown
    for kwargs, needle in [({"name": "Bad"}, "component name"), ({"version": "1"}, "invalid version"),
                           ({"route": "hello"}, "invalid route")]:
        with pytest.raises(InvalidName, match=needle):
            DeployRequest(**({"name": "hello", "wasm": b"", "version": "1.0.0"} | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("record", [
    ComponentInfo("hello", "/hello", AT, "1.0.0", nested=True),
    ComponentInfo("new", "/new", AT, None),
    VersionInfo("hello", "1.0.0", "a" * 64, SETTINGS, AT),
    DEPLOYMENT,
    Deployment("plain", "/plain", "1.0.0", "c" * 64, "{}", "0.9.0", AT),
    HistoryEntry(7, "hello", "1.0.0", None, "deploy", "canary", "cli:ada", "failed", "probe: 500", AT),
    AuditEntry(3, "tok_1", "deploy", "hello@1.0.0", "ok", "strategy canary", AT),
    Serving("1.0.0", "2.0.0", 20),
    Change(DEPLOYMENT, Serving("1.0.0", "2.0.0", 20), ("route /hello shadows /hello/x",)),
    Change(DEPLOYMENT),
    ComponentStatus(ComponentInfo("hello", "/hello", AT, "1.0.0"),
                    (VersionInfo("hello", "1.0.0", "a" * 64, SETTINGS, AT),), DEPLOYMENT, Serving("1.0.0")),
    ComponentStatus(ComponentInfo("new", "/new", AT, None), ()),
    ComponentStatus(ComponentInfo("auth", None, AT, "1.0.0", kind="middleware"), ()),
    ComponentStatus(ComponentInfo("api", "/api", AT, "1.0.0", stages=("auth", "log")), ()),
    HistoryEntry(8, "api", "1.0.0", None, "pipeline", "pipeline", "cli:ada", "ok", "(none) -> auth", AT, ("auth",)),
], ids=lambda r: type(r).__name__)
def test_every_record_round_trips_through_its_one_json_shape(record: object) -> None:
    data = record.to_json()  # type: ignore[attr-defined]
    assert json.loads(json.dumps(data)) == data  # plain JSON
    assert type(record).from_json(data) == record  # type: ignore[attr-defined]


def test_the_json_shape_names_fields_as_the_records_do() -> None:
    data = Change(DEPLOYMENT, Serving("1.0.0")).to_json()
    assert set(data) == {"deployment", "serving", "warnings"}
    assert data["deployment"] == {
        "component": "hello", "kind": "route", "route": "/hello", "nested": True, "stages": [],
        "active_version": "1.0.0", "sha256": "a" * 64,
        "settings": {"config": {"greeting": "hi"}, "kv": VersionSettings.of(Capability.kv()).to_json()["kv"],
                     "limits": {"timeout": 2.5}},
        "previous_version": None, "canary_version": "2.0.0", "canary_percent": 20, "canary_sha256": "b" * 64,
        "canary_settings": {}, "auto_rollback": "error-rate=5%,window=30s,min-requests=20",
        "updated_at": "2024-05-01T12:30:15.123456+00:00"}
    assert data["serving"] == {"active": "1.0.0", "canary": None, "canary_percent": 0}
    status = ComponentStatus(ComponentInfo("hello", "/hello", AT, "1.0.0"), ()).to_json()
    assert set(status) == {"component", "kind", "route", "nested", "stages", "active_version", "created_at",
                           "versions", "deployment", "serving", "unavailable"}


def test_a_newer_server_may_add_keys_but_not_drop_them() -> None:
    data = {**Serving("1.0.0").to_json(), "weight": 3}
    assert Serving.from_json(data) == Serving("1.0.0")
    with pytest.raises(KeyError):
        HistoryEntry.from_json({"id": 1})

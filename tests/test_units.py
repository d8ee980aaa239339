"""The one duration grammar, and every place a duration comes in: CLI flags, the manifest, settings, Python."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import text_component, write_wasm

from airssys_web.cli import cli
from airssys_web.errors import CapabilityError
from airssys_web.lifecycle.autorollback import Policy
from airssys_web.lifecycle.deploy import deploy
from airssys_web.lifecycle.manifest import load_manifest
from airssys_web.lifecycle.registry import EmbeddedRegistry
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.runtime.limits import Limits
from airssys_web.units import format_duration, parse_duration
from airssys_web.web.auth import TokenAuthority

SECRET = "s" * 32


@pytest.mark.parametrize(("value", "seconds"), [
    ("200ms", 0.2), ("2s", 2.0), ("1.5s", 1.5), ("1m", 60.0), ("1.5h", 5400.0), ("1h", 3600.0), ("7d", 604800.0),
    ("90", 90.0), ("0.25", 0.25), (" 30s ", 30.0), ("5 s", 5.0), (3, 3.0), (0.5, 0.5), ("0", 0.0),
])
def test_parse_duration(value: str | float, seconds: float) -> None:
    assert parse_duration(value, positive=False) == seconds


@pytest.mark.parametrize(("value", "message"), [
    ("", "write a duration"), ("fast", "write a duration"), ("2x", "write a duration"), ("1w", "write a duration"),
    ("-1s", "write a duration"), ("1h30m", "write a duration"), ("1M", "write a duration"), ("ms", "write a duration"),
    ("3 days", "write a duration"), (True, "write a duration"), (None, "write a duration"),
    (float("nan"), "more than 0"), (float("inf"), "more than 0"), (-1, "more than 0"), ("0s", "more than 0"),
])
def test_parse_duration_refuses(value: object, message: str) -> None:
    with pytest.raises(CapabilityError, match=message) as info:
        parse_duration(value, what="--thing")  # type: ignore[arg-type]
    assert "invalid --thing" in str(info.value) and "200ms, 2s, 1m, 1h or 7d" in str(info.value)


def test_parse_duration_maximum_names_the_bound() -> None:
    assert parse_duration("366d", maximum=366 * 86400) == 366 * 86400
    with pytest.raises(CapabilityError, match=r"invalid --ttl '400d': at most 366d"):
        parse_duration("400d", what="--ttl", maximum=366 * 86400)


@pytest.mark.parametrize(("seconds", "text"), [(0.2, "200ms"), (2, "2s"), (90, "90s"), (120, "2m"), (3600, "1h"),
                                               (604800, "7d"), (1.5, "1.5s"), (0.0005, "0.0005s")])
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_limits_take_durations_in_python() -> None:
    assert Limits(timeout="200ms").timeout == 0.2  # type: ignore[arg-type]
    assert Limits.from_dict({"timeout": "2s", "acquire_timeout": "500ms"}) == Limits(timeout=2, acquire_timeout=0.5)
    assert Limits.canonical({"timeout": "1m", "memory": 64 << 20}) == {"timeout": 60.0, "memory": 64 << 20}
    with pytest.raises(CapabilityError, match="invalid limit timeout 'soon'"):
        Limits(timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(CapabilityError, match="timeout"):
        Limits(timeout="2h")  # type: ignore[arg-type]  # over the 3600 s bound


def test_manifest_timeout_takes_units(tmp_path: Path) -> None:
    path = tmp_path / "airssys.toml"
    path.write_text('[limits]\ntimeout = "200ms"\n')
    assert load_manifest(path).limits == {"timeout": 0.2}


def test_settings_store_durations_in_seconds(tmp_path: Path) -> None:
    """Python and the admin API pass settings: a spelt duration is stored as seconds (equal limits, equal text)."""
    with EmbeddedRegistry(tmp_path / "reg") as registry:
        dep = deploy(registry, "c", text_component("c"), version="1.0.0", route="/c",
                     settings=VersionSettings.from_json({"limits": {"timeout": "1.5s"}}))
        assert dep.settings.to_json()["limits"] == {"timeout": 1.5}
        dep = deploy(registry, "c", text_component("c"), version="1.0.0", route="/c",
                     settings=VersionSettings.of(timeout="1500ms"))
        assert dep.active_version == "1.0.0"  # the same version again: not "already exists with other settings"


def test_cli_timeout_takes_units(tmp_path: Path) -> None:
    wasm = write_wasm(tmp_path, "c.wasm", text_component("c"))
    reg = str(tmp_path / "reg")
    result = CliRunner().invoke(cli, ["deploy", "c", str(wasm), "--route", "/c", "--version", "1.0.0",
                                      "--timeout", "200ms", "--registry", reg, "--json"])
    assert result.exit_code == 0, result.output
    with EmbeddedRegistry(reg) as registry:
        assert registry.get_version("c", "1.0.0").settings.to_json()["limits"] == {"timeout": 0.2}
    result = CliRunner().invoke(cli, ["deploy", "c", str(wasm), "--route", "/c", "--version", "1.0.1",
                                      "--timeout", "soon", "--registry", reg])
    assert result.exit_code == 2
    assert "invalid --timeout 'soon': write a duration such as 200ms" in result.output


@pytest.mark.parametrize(("ttl", "seconds"), [("90", 90), ("45s", 45), ("30m", 1800), ("1.5h", 5400), ("7d", 604800)])
def test_token_ttl_takes_the_same_grammar(ttl: str, seconds: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRSSYS_SECRET", SECRET)
    result = CliRunner().invoke(cli, ["token", "--ttl", ttl, "--json"])
    assert result.exit_code == 0, result.output
    token = TokenAuthority(SECRET).verify(json.loads(result.output)["token"])
    assert token.expires_at - token.issued_at == pytest.approx(seconds, abs=0.01)


@pytest.mark.parametrize(("ttl", "message"), [("0", "more than 0"), ("1w", "write a duration"),
                                              ("400d", "at most 366d"), ("h", "write a duration")])
def test_token_ttl_refuses(ttl: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRSSYS_SECRET", SECRET)
    result = CliRunner().invoke(cli, ["token", "--ttl", ttl])
    assert result.exit_code == 2 and f"invalid --ttl {ttl!r}" in result.output and message in result.output


@pytest.mark.parametrize(("text", "window"), [("window=30s", 30.0), ("window=500ms", 0.5), ("window=2m", 120.0),
                                              ("window=1h", 3600.0), ("window=45", 45.0)])
def test_auto_rollback_window_takes_the_same_grammar(text: str, window: float) -> None:
    policy = Policy.parse(text)
    assert policy.window == window
    assert Policy.parse(str(policy)) == policy


def test_auto_rollback_window_refusal_names_the_setting() -> None:
    with pytest.raises(CapabilityError, match="invalid auto-rollback window '3 days': write a duration"):
        Policy.parse("window=3 days")

"""VersionSettings: one immutable value for a version's grants, limits and needs, in the JSON form registries store."""

from __future__ import annotations

from pathlib import Path

import pytest

from airssys_web.capabilities.grants import Capability
from airssys_web.capabilities.needs import Needs
from airssys_web.capabilities.secrets import SecretStore
from airssys_web.errors import CapabilityError
from airssys_web.lifecycle.settings import VersionSettings, union_needs
from airssys_web.runtime.limits import Limits

STORED = {
    "limits": {"min_instances": 1, "timeout": 2.5},
    "outbound": ["https://api.example.com"],
    "files": [{"host": "/srv/data", "guest": "/data", "mode": "ro"}],
    "config": {"greeting": "hi"},
    "secrets": {"token": {"ref": "hmac-sha256:" + "0" * 64}},
    "kv": {"max_key_bytes": 512, "max_keys": 10, "max_total_bytes": 1024, "max_value_bytes": 256},
    "needs": {"kv": True, "outbound": ["https://api.example.com"]},
}


def test_the_stored_form_round_trips_exactly() -> None:
    settings = VersionSettings.from_json(STORED)
    assert settings.to_json() == STORED
    assert VersionSettings.from_json(settings.to_json()) == settings
    assert settings.limits == Limits(timeout=2.5) and settings.given_limits == {"timeout", "min_instances"}
    assert settings.grants.config == {"greeting": "hi"} and settings.needs == Needs.from_dict(STORED["needs"])
    assert VersionSettings().to_json() == {} and VersionSettings().json_text() == "{}"


def test_equal_settings_give_equal_text() -> None:
    a = VersionSettings.of(Capability.config("b", "1"), Capability.config("a", "2"), timeout="200ms")
    b = VersionSettings.from_json({"limits": {"timeout": 0.2}, "config": {"a": "2", "b": "1"}})
    assert a == b and a.json_text() == b.json_text() == '{"config":{"a":"2","b":"1"},"limits":{"timeout":0.2}}'


def test_only_given_limits_are_stored_and_explicit_defaults_stay_given() -> None:
    assert VersionSettings.of(memory=64 << 20).to_json() == {"limits": {"memory": 64 << 20}}
    assert VersionSettings.of(timeout=30).to_json() == {"limits": {"timeout": 30}}  # the default, but given
    assert VersionSettings(limits=Limits(timeout=2.0)).given_limits == {"timeout"}  # a Limits: its changed fields


def test_merging_lets_given_values_win_and_defaults_never() -> None:
    manifest = VersionSettings.of(Capability.config("greeting", "from manifest"), Capability.kv(), timeout=2.5,
                                  needs=Needs.from_dict({"kv": True}))
    flags = VersionSettings.of(Capability.config("greeting", "from flags"), memory=64 << 20,
                               needs=Needs.from_dict({"outbound": ["https://x.example"]}))
    merged = manifest.merged(flags)
    assert merged.limits == Limits(timeout=2.5, memory=64 << 20)  # the flags set no timeout: the manifest's stays
    assert merged.grants.config == {"greeting": "from flags"} and merged.grants.kv is not None
    assert merged.needs == Needs.from_dict({"kv": True, "outbound": ["https://x.example"]})
    assert manifest.merged(VersionSettings.of(timeout=30)).limits.timeout == 30  # a given default wins too
    assert union_needs(None, None) is None


def test_secrets_are_values_until_stored_then_references(tmp_path: Path) -> None:
    settings = VersionSettings.of(Capability.secret("token", "s3cr3t-value"))
    with pytest.raises(CapabilityError, match="need a secret store"):
        settings.to_json()  # never shown by accident
    assert settings.to_json(reveal_secrets=True) == {"secrets": {"token": "s3cr3t-value"}}
    assert "s3cr3t" not in repr(settings) and "secret token=********" in repr(settings)
    stored = settings.with_secrets_stored(SecretStore(tmp_path / "secrets"))
    assert "s3cr3t" not in stored.json_text() and set(stored.to_json()["secrets"]["token"]) == {"ref"}
    assert VersionSettings.from_json(stored.to_json()) == stored


@pytest.mark.parametrize(("data", "message"), [
    (["limits"], "settings must be a JSON object"),
    ({"colour": "red"}, "unknown settings key(s) colour; known: config, files, kv, limits, needs, outbound, secrets"),
    ({"limits": 5}, "settings 'limits' must be a table"),
    ({"limits": {"timeout": -1}}, "invalid limit timeout=-1"),
    ({"limits": {"speed": 1}}, "unknown limit(s) speed"),
    ({"outbound": "https://x.example"}, "settings 'outbound' must be a list"),
    ({"needs": {"kv": "yes"}}, "'kv' must be true or false"),
])
def test_bad_settings_are_refused_with_one_line_naming_the_key(data: object, message: str) -> None:
    with pytest.raises(CapabilityError) as info:
        VersionSettings.from_json(data)  # type: ignore[arg-type]
    assert message in str(info.value) and "\n" not in str(info.value)

"""Secrets: usable by the guest, absent from settings, listings, errors and logs."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from caps_support import generation, imports_guest
from support import text_component

from airssys_web.capabilities.grants import Capability
from airssys_web.capabilities.secrets import SecretStore
from airssys_web.errors import CapabilityError, VersionExists
from airssys_web.lifecycle.api import DeployRequest, Plan, Strategy
from airssys_web.lifecycle.deploy import deploy
from airssys_web.lifecycle.registry import EmbeddedRegistry
from airssys_web.lifecycle.services import HostServices
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.lifecycle.strategies import rollout_local
from airssys_web.runtime.imports import HostContext, _log_writer

SECRET = "correct-horse-battery-staple"


def test_store_is_private_content_addressed_and_keyed(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets")
    ref = store.put(SECRET)
    assert store.put(SECRET) == ref and store.get(ref) == SECRET
    assert store.put("other") != ref
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (tmp_path / "secrets").iterdir())
    assert SECRET not in ref and SecretStore(tmp_path / "elsewhere").put(SECRET) != ref  # keyed per registry
    with pytest.raises(CapabilityError, match="malformed"):
        store.get("../../etc/passwd")
    with pytest.raises(CapabilityError, match="missing") as info:
        store.get("hmac-sha256:" + "0" * 64)
    assert SECRET not in str(info.value)


def test_deploy_keeps_only_references_and_the_guest_reads_the_value(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path / "reg") as reg:
        dep = deploy(reg, "s", imports_guest(), version="1.0.0", route="/s",
                     settings=VersionSettings.of(Capability.secret("token", SECRET)))
        assert SECRET not in dep.settings_json
        with pytest.raises(VersionExists) as info:  # the error shows the stored settings: references only
            deploy(reg, "s", imports_guest(), version="1.0.0", route="/s",
                   settings=VersionSettings.of(Capability.secret("token", "another-secret-value")))
        assert SECRET not in str(info.value) and "another-secret-value" not in str(info.value)
        deploy(reg, "s", imports_guest(), version="1.0.0", route="/s",  # the same secret again: a no-op
               settings=VersionSettings.of(Capability.secret("token", SECRET)))
        services = HostServices(tmp_path / "reg")
        gen = generation(imports_guest(), dep.settings.to_json(), services)
        assert gen.call("@c", "token").headers == [("value", SECRET)]
        gen.close()
        assert SECRET not in repr(gen.ctx)
    assert SECRET.encode() not in (tmp_path / "reg" / "registry.db").read_bytes()


def test_strategies_store_references_too(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path / "reg") as reg:
        dep = rollout_local(reg, DeployRequest("s", text_component("bg"), version="1.0.0", route="/s",
                                               settings=VersionSettings.from_json({"secrets": {"token": SECRET}}),
                                               plan=Plan(Strategy.BLUE_GREEN)))
        assert SECRET not in dep.settings_json and dep.settings.grants.secrets["token"].ref is not None


def test_guest_output_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="airssys_web.guest")
    ctx = HostContext("c", "1.0.0", config={"token": SECRET}, secret_values=(SECRET, "ab"))
    write = _log_writer(ctx, logging.INFO, "stdout")
    write(f"the token is {SECRET}\n".encode())
    write(b"ab is too short to redact\n")
    text = caplog.text
    assert SECRET not in text and "the token is ********" in text and "ab is too short" in text


def test_a_secret_without_its_registry_cannot_be_resolved(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path / "reg") as reg:
        dep = deploy(reg, "s", imports_guest(), version="1.0.0", route="/s",
                     settings=VersionSettings.of(Capability.secret("token", SECRET)))
    with pytest.raises(CapabilityError, match="cannot be read without its registry"):
        HostServices(None).context("s", "1.0.0", dep.settings.to_json())

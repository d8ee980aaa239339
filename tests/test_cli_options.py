"""The shared grant/limit options, and ``deploy`` showing declared needs next to grants (CLI, real registry)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from support import text_component, write_wasm

from airssys_web.capabilities.grants import FileAccess, Grants
from airssys_web.capabilities.kv import KVQuota
from airssys_web.capabilities.needs import Needs, embed_needs
from airssys_web.cli import cli
from airssys_web.cli.commands.options import CapabilityOptions, capability_options
from airssys_web.errors import CapabilityError
from airssys_web.lifecycle.registry import EmbeddedRegistry

SECRET = "s3cr3t-value-never-shown"


@click.command()
@capability_options
def probe(**kwargs: Any) -> None:
    opts = CapabilityOptions.pop_from(kwargs, environ={"FROM_ENV": "env-value"})
    assert not kwargs  # every option was taken out
    click.echo(json.dumps({"grants": opts.grants.to_settings(reveal=True), "limits": opts.limits,
                           "manifest": str(opts.manifest), "declared": opts.grant_declared,
                           "given": opts.grants_given}))


def _probe(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(probe, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_every_option_parses_once(tmp_path: Path) -> None:
    out = _probe("--allow-host", "https://api.example.com", "--allow-host", "http://127.0.0.1:*",
                 "--allow-file", f"{tmp_path}:/data", "--allow-file", f"{tmp_path}:/out:rw",
                 "--config", "a=1", "--secret", "t=v", "--secret", "FROM_ENV", "--kv-quota",
                 "max_total_bytes=1MiB,max_keys=10", "--timeout", "2.5", "--memory", "64MiB", "--fuel", "1000",
                 "--max-instances", "4", "--min-instances", "0", "--max-body", "512KiB",
                 "--manifest", "m.toml", "--grant-declared")
    grants = Grants.from_settings(out["grants"])
    assert [str(h) for h in grants.outbound.grants] == ["https://api.example.com", "http://127.0.0.1:*"]
    assert grants.files == (FileAccess(str(tmp_path), "/data", False), FileAccess(str(tmp_path), "/out", True))
    assert out["grants"]["secrets"] == {"t": "v", "FROM_ENV": "env-value"}
    assert grants.kv is not None and grants.kv.quota == KVQuota(max_total_bytes=1 << 20, max_keys=10)
    assert out["limits"] == {"timeout": 2.5, "memory": 64 << 20, "fuel": 1000, "max_instances": 4,
                             "min_instances": 0, "max_body": 512 << 10}
    assert out["manifest"] == "m.toml" and out["declared"] and out["given"]
    assert _probe("--memory", "32")["limits"] == {"memory": 32 << 20}  # a bare number is MiB
    bare = _probe()
    assert bare["grants"] == {} and bare["limits"] == {} and not bare["given"]
    assert "kv" in _probe("--kv")["grants"]


@pytest.mark.parametrize(("args", "message"), [
    (["--allow-host", "ftp://x"], "not supported"),
    (["--config", "novalue"], "--config expects KEY=VALUE"),
    (["--secret", "NOT_IN_ENV"], "set the environment variable NOT_IN_ENV"),
    (["--kv-quota", "max_keys=many"], "expected a whole number"),
    (["--kv-quota", "bogus=1"], "unknown kv quota"),
    (["--memory", "lots"], "not a size"),
    (["--timeout", "0"], "invalid --timeout=0"),
    (["--max-instances", "0"], "invalid --max-instances=0"),
])
def test_bad_options(args: list[str], message: str) -> None:
    result = CliRunner().invoke(probe, args)
    assert isinstance(result.exception, CapabilityError)
    assert message in str(result.exception)


# -- deploy ------------------------------------------------------------------------------------------------------

def _deploy(tmp_path: Path, wasm: bytes, *args: str, version: str = "1.0.0") -> Any:
    path = write_wasm(tmp_path, f"c-{version}.wasm", wasm)
    return CliRunner().invoke(cli, ["deploy", "c", str(path), "--route", "/c", "--version", version,
                                    "--registry", str(tmp_path / "reg"), *args])


def test_deploy_shows_needs_next_to_grants_and_stores_them(tmp_path: Path) -> None:
    wasm = embed_needs(text_component("n"), Needs.from_dict({"outbound": ["https://api.example.com"], "kv": True,
                                                             "config": {"greeting": "Hello"}}))
    r = _deploy(tmp_path, wasm, "--allow-host", "https://api.example.com", "--kv", "--secret", f"tok={SECRET}",
                "--memory", "64")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "capabilities:"
    assert any(line.split() == ["outbound", "https://api.example.com", "https://api.example.com", "granted"]
               for line in lines)
    assert any(line.split()[:2] == ["kv", "kv"] and line.endswith("granted") for line in lines)
    assert any(line.split() == ["config", "greeting", "greeting=Hello", "(default)", "default"] for line in lines)
    assert any(line.split() == ["secret", "-", "tok=********", "unused"] for line in lines)
    assert lines[-1].startswith("deployed c@1.0.0 at /c")
    assert SECRET not in r.output
    listing = CliRunner().invoke(cli, ["list", "--registry", str(tmp_path / "reg"), "--json"])
    status = CliRunner().invoke(cli, ["status", "--registry", str(tmp_path / "reg")])
    (row,) = json.loads(listing.output)
    settings = row["deployment"]["settings"]
    assert settings["outbound"] == ["https://api.example.com"] and settings["config"] == {"greeting": "Hello"}
    assert set(settings["secrets"]["tok"]) == {"ref"} and settings["limits"] == {"memory": 64 << 20}
    table = CliRunner().invoke(cli, ["list", "--registry", str(tmp_path / "reg")], env={"COLUMNS": "200"}).output
    for grant in ("outbound https://api.example.com", "config greeting=Hello", "secret tok=********",
                  "kv (keys <= 10000, total <= 64 MiB, value <= 1 MiB, key <= 512 B)"):
        assert grant in table
    assert "grants: outbound https://api.example.com" in status.output and "memory 64 MiB" in status.output
    with EmbeddedRegistry(tmp_path / "reg") as reg:
        stored = reg.get_version("c", "1.0.0").settings_json
    for text in (listing.output, table, status.output, stored):
        assert SECRET not in text


def test_deploy_refuses_a_declared_need_that_is_not_granted(tmp_path: Path) -> None:
    wasm = embed_needs(text_component("n2"), Needs.from_dict({"outbound": ["https://api.example.com"], "kv": True}))
    r = _deploy(tmp_path, wasm, "--kv")
    assert r.exit_code == 2
    assert "missing" in r.output  # the table is shown first
    assert r.output.strip().splitlines()[-1] == (
        "error: the component declares needs that were not granted: outbound https://api.example.com "
        "(--allow-host https://api.example.com); grant them, or pass --grant-declared to grant exactly what is "
        "declared")
    assert not (tmp_path / "reg" / "blobs").exists() or not any((tmp_path / "reg" / "blobs").iterdir())
    r = _deploy(tmp_path, wasm, "--grant-declared")
    assert r.exit_code == 0, r.output
    assert any(line.split()[-1] == "granted" and "https://api.example.com" in line for line in r.output.splitlines())


def test_deploy_checks_granted_directories(tmp_path: Path) -> None:
    r = _deploy(tmp_path, text_component("d"), "--allow-file", f"{tmp_path}/missing:/d")
    assert r.exit_code == 2 and f"{tmp_path}/missing is not an existing directory" in r.output
    r = _deploy(tmp_path, text_component("d"), "--allow-file", f"{tmp_path}:/d")
    assert r.exit_code == 2 and "holds or is inside the registry" in r.output


def test_deploy_reads_the_manifest_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "airssys.toml").write_text('[needs]\nkv = true\n\n[grants]\nkv = true\n[limits]\ntimeout = 3\n')
    r = _deploy(tmp_path, text_component("m"))
    assert r.exit_code == 0, r.output
    assert f"capabilities (manifest {tmp_path / 'airssys.toml'}):" in r.output
    with EmbeddedRegistry(tmp_path / "reg") as reg:
        settings = reg.get_version("c", "1.0.0").settings.to_json()
    assert settings["limits"] == {"timeout": 3} and "kv" in settings and settings["needs"] == {"kv": True}


def test_update_shares_the_options(tmp_path: Path) -> None:
    assert _deploy(tmp_path, text_component("u1")).exit_code == 0
    path = write_wasm(tmp_path, "u2.wasm", text_component("u2"))
    r = CliRunner().invoke(cli, ["update", "c", str(path), "--version", "1.1.0", "--registry", str(tmp_path / "reg"),
                                 "--config", "a=b", "--timeout", "1"])
    assert r.exit_code == 0, r.output
    with EmbeddedRegistry(tmp_path / "reg") as reg:
        assert reg.get_version("c", "1.1.0").settings.to_json() == {"config": {"a": "b"}, "limits": {"timeout": 1.0}}


def test_kv_store_labels() -> None:
    kv = _probe("--kv-store", "cache", "--kv-store", "default", "--kv-store", "sessions")["grants"]["kv"]
    assert kv["stores"] == ["cache", "sessions"] and "default" not in kv  # 'default' is the namespace itself
    assert Grants.from_settings({"kv": kv}).kv.labels == ("default", "cache", "sessions")  # type: ignore[union-attr]
    result = CliRunner().invoke(probe, ["--kv-store", "Not OK"])
    assert result.exit_code != 0 and "key-value store label 'Not OK' is invalid" in str(result.exception)

"""The embedded registry beyond the contract (test_registry.py): its blob files, SQLite, other processes, crashes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import airssys_web
from airssys_web.errors import InvalidName, RegistryError
from airssys_web.lifecycle.registry import SCHEMA_VERSION, EmbeddedRegistry

REPO_ROOT = Path(airssys_web.__file__).resolve().parents[1]


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[EmbeddedRegistry]:
    with EmbeddedRegistry(tmp_path / "reg") as registry:
        yield registry


def wasm(n: int) -> bytes:
    return b"\0asm" + n.to_bytes(4, "big") * 16


def deploy(reg: EmbeddedRegistry, name: str, version: str, n: int) -> None:
    reg.deploy(name, version, sha256=reg.blobs.put(wasm(n)), route=f"/{name}")


def run_child(code: str, *args: str, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", code, *args], env=env, text=True, **kw
    )


# -- blob files ------------------------------------------------------------------------------------------------------
def test_blob_layout_leaves_no_temporary_files(reg: EmbeddedRegistry) -> None:
    sha = reg.blobs.put(wasm(1))
    assert reg.blobs.path(sha) == reg.root / "blobs" / sha[:2] / f"{sha}.wasm"
    assert [p.name for p in reg.blobs.path(sha).parent.iterdir()] == [f"{sha}.wasm"]
    assert reg.artifacts_dir.is_dir() and reg.artifacts_dir == reg.root / "artifacts"


def test_corrupt_blob_is_detected_on_read_and_repaired_by_put(reg: EmbeddedRegistry) -> None:
    sha = reg.blobs.put(wasm(1))
    reg.blobs.path(sha).write_bytes(wasm(2))
    with pytest.raises(RegistryError, match="corrupt"):
        reg.blobs.read(sha)
    reg.blobs.put(wasm(1))
    assert reg.blobs.read(sha) == wasm(1)


def test_malformed_blob_names_never_become_paths(reg: EmbeddedRegistry) -> None:
    for bad in ["", "abc", "A" * 64, "../" + "0" * 61]:
        with pytest.raises(InvalidName, match="64 lowercase hex"):
            reg.blobs.path(bad)


def test_verify_reports_missing_and_corrupt_blobs(reg: EmbeddedRegistry) -> None:
    deploy(reg, "a", "1.0.0", 1)
    deploy(reg, "b", "1.0.0", 2)
    assert reg.verify() == []
    reg.blobs.path(reg.get_version("a", "1.0.0").sha256).unlink()
    reg.blobs.path(reg.get_version("b", "1.0.0").sha256).write_bytes(b"junk")
    problems = reg.verify()
    assert len(problems) == 2 and any("corrupt" in p for p in problems) and any("not in" in p for p in problems)


# -- other processes and crashes -------------------------------------------------------------------------------------
def test_change_token_sees_another_process(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path) as reg:
        before = reg.change_token()
        child = run_child(
            "import sys; from airssys_web.lifecycle.registry import EmbeddedRegistry\n"
            "with EmbeddedRegistry(sys.argv[1]) as r:\n"
            "    r.deploy('p', '1.0.0', sha256=r.blobs.put(b'from child'), route='/p', actor='child')\n",
            str(tmp_path),
        )
        assert child.wait(timeout=60) == 0
        assert reg.change_token() != before
        (dep,) = reg.active()
        assert dep.component == "p" and reg.blobs.read(dep.sha256) == b"from child"
        assert reg.history("p")[0].actor == "child"


_CRASH_LOOP = """
import sys
from airssys_web.capabilities.grants import Capability
from airssys_web.lifecycle.registry import EmbeddedRegistry
from airssys_web.lifecycle.settings import VersionSettings
reg = EmbeddedRegistry(sys.argv[1])
rnd, i = int(sys.argv[2]), 0
while True:
    name = f"c{i % 3}"
    sha = reg.blobs.put(b"\\0asm" + f"{rnd}.{i}".encode() * 4096)
    settings = VersionSettings.of(Capability.config("i", str(i)))
    reg.deploy(name, f"{rnd}.0.{i}", sha256=sha, route=f"/{name}", settings=settings)
    if i % 4 == 3:
        reg.rollback(name)
    print(i, flush=True)
    i += 1
"""


def test_sigkill_mid_write_leaves_a_consistent_registry(tmp_path: Path) -> None:
    for rnd in range(1, 4):
        child = run_child(_CRASH_LOOP, str(tmp_path), str(rnd), stdout=subprocess.PIPE)
        assert child.stdout is not None
        for _ in range(10 * rnd):
            assert child.stdout.readline(), "crash-loop child died on its own"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        child.stdout.close()
        with EmbeddedRegistry(tmp_path) as reg:
            assert reg.verify() == []
            history = reg.history()
            versions = [v for c in reg.components() for v in reg.versions(c.name)]
            assert len([h for h in history if h.action == "deploy"]) == len(versions) >= 10 * rnd
            assert reg.change_token() == len(history)  # every committed write bumped it exactly once
            assert [h.id for h in history] == list(range(1, len(history) + 1))
            for dep in reg.active():
                assert dep.active_version == [h for h in history if h.component == dep.component][-1].version


# -- the database ----------------------------------------------------------------------------------------------------
def test_schema_wal_and_reopen(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path) as reg:
        deploy(reg, "a", "1.0.0", 1)
    with EmbeddedRegistry(tmp_path) as reg:  # reopening migrates nothing and keeps the data
        assert reg.get_component("a").active_version == "1.0.0"
    db = sqlite3.connect(tmp_path / "registry.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RegistryError, match="upgrade airssys-web"):
        EmbeddedRegistry(tmp_path)


def test_a_schema_3_registry_is_migrated_with_its_data_and_references(tmp_path: Path) -> None:
    """Schema 4 rebuilt the components table (a middleware stage has no route): a registry made by the previous
    release keeps its components, versions, deployments and history, and every foreign key still holds."""
    from airssys_web.lifecycle.registry.sqlite import _MIGRATIONS

    db = sqlite3.connect(tmp_path / "registry.db", isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    for step in _MIGRATIONS[:3]:
        for statement in step:
            db.execute(statement)
    sha = "ab" * 32
    (tmp_path / "blobs" / "ab").mkdir(parents=True)
    db.execute("INSERT INTO components (name, route, created_at, nested) "
               "VALUES ('a', '/a', '2026-01-01T00:00:00+00:00', 0)")
    for v in ("1.0.0", "1.1.0"):
        db.execute("INSERT INTO versions VALUES ('a', ?, ?, '{}', '2026-01-01T00:00:00+00:00')", (v, sha))
    db.execute("INSERT INTO deployments (component, active_version, previous_version, updated_at) "
               "VALUES ('a', '1.1.0', '1.0.0', '2026-01-01T00:00:00+00:00')")
    db.execute("INSERT INTO history (component, version, previous_version, action, strategy, actor, outcome, at) "
               "VALUES ('a', '1.1.0', '1.0.0', 'deploy', 'immediate', 'cli', 'ok', '2026-01-01T00:00:00+00:00')")
    db.execute("PRAGMA user_version = 3")
    db.close()
    with EmbeddedRegistry(tmp_path) as reg:
        info = reg.get_component("a")
        assert (info.route, info.kind, info.stages, info.active_version) == ("/a", "route", (), "1.1.0")
        assert reg.history("a")[0].stages is None
        assert reg.rollback("a").active_version == "1.0.0"
    db = sqlite3.connect(tmp_path / "registry.db")
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    with pytest.raises(sqlite3.IntegrityError):  # the rebuilt table is still referenced
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("DELETE FROM components WHERE name = 'a'")


def test_settings_written_before_version_settings_load_and_compare_as_stored(tmp_path: Path) -> None:
    """Rows written by an older airssys-web (settings as a plain dict dumped to text) load unchanged, and a redeploy
    of that version with the same settings is still recognised as the same."""
    from airssys_web.lifecycle.settings import VersionSettings

    with EmbeddedRegistry(tmp_path) as reg:
        sha = reg.blobs.put(wasm(1))
        deploy(reg, "a", "0.1.0", 2)
        stored = '{"config":{"greeting":"hi"},"limits":{"min_instances":1,"timeout":2}}'
        db = sqlite3.connect(tmp_path / "registry.db")
        db.execute("INSERT INTO versions VALUES ('a', '1.0.0', ?, ?, '2024-01-01T00:00:00+00:00')", (sha, stored))
        db.commit()
        db.close()
        settings = reg.get_version("a", "1.0.0").settings
        assert settings == VersionSettings.from_json({"config": {"greeting": "hi"},
                                                      "limits": {"timeout": 2, "min_instances": 1}})
        assert settings.json_text() == stored  # explicit defaults stay given: the same text
        assert reg.deploy("a", "1.0.0", sha256=sha, settings=settings).active_version == "1.0.0"


def test_unusable_database_is_a_registry_error(tmp_path: Path) -> None:
    (tmp_path / "registry.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RegistryError, match="unusable"):
        EmbeddedRegistry(tmp_path)


def test_unwritable_root_is_a_registry_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RegistryError, match="cannot create registry directory"):
        EmbeddedRegistry(tmp_path / "file" / "reg")

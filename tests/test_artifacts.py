"""The compile cache: memory and disk hits, checksum verification, stale or corrupt artifacts recompiled."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import artifacts, text_component

from airssys_web.errors import InvalidComponent
from airssys_web.runtime import artifacts as artifacts_mod
from airssys_web.runtime.artifacts import sha256_hex


def test_compile_once_then_memory_then_disk(tmp_path: Path) -> None:
    wasm = text_component("cache me")
    sha = sha256_hex(wasm)
    cache = artifacts(tmp_path)
    cache.get(sha, wasm)
    cache.get(sha, wasm)
    assert cache.compilations == 1
    assert cache.has_artifact(sha)
    fresh = artifacts(tmp_path)  # a new process: loads from disk, compiles nothing
    fresh.get(sha)
    assert fresh.compilations == 0


def test_corrupt_artifact_is_recompiled_not_trusted(tmp_path: Path) -> None:
    wasm = text_component("corrupt")
    sha = sha256_hex(wasm)
    artifacts(tmp_path).get(sha, wasm)
    (art,) = tmp_path.glob("*.cwasm")
    data = bytearray(art.read_bytes())
    data[len(data) // 2] ^= 0xFF
    art.write_bytes(bytes(data))
    cache = artifacts(tmp_path)
    cache.get(sha, wasm)
    assert cache.compilations == 1
    # the rewritten artifact is good again
    again = artifacts(tmp_path)
    again.get(sha)
    assert again.compilations == 0


def test_artifact_keyed_by_engine_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wasm = text_component("fingerprint")
    sha = sha256_hex(wasm)
    artifacts(tmp_path).get(sha, wasm)
    monkeypatch.setattr(artifacts_mod, "engine_fingerprint", lambda fuel=False: "another-wasmtime")
    cache = artifacts(tmp_path)
    assert not cache.has_artifact(sha)
    cache.get(sha, wasm)
    assert cache.compilations == 1


def test_missing_artifact_without_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidComponent, match="no compiled artifact"):
        artifacts(tmp_path).get("0" * 64)


def test_garbage_is_invalid_component() -> None:
    with pytest.raises(InvalidComponent, match="does not validate"):
        artifacts(None).compile(b"\x00asm\x0d\x00\x01\x00garbage")

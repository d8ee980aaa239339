"""tools/airssys_build.py, the PEP 517 backend: without Rust it stops at once and says what to install."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def _backend() -> ModuleType:
    spec = importlib.util.spec_from_file_location("airssys_build", REPO / "tools" / "airssys_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_cargo_on_path_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    backend = _backend()
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there: no cargo, no rustc
    with pytest.raises(backend.RustMissing, match=r"(?s)no Rust toolchain \(cargo\).*rustup.*apt-get install cargo"):
        backend.get_requires_for_build_wheel()


def test_an_old_rustc_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    backend = _backend()
    for tool, text in (("cargo", "cargo 1.60.0"), ("rustc", "rustc 1.60.0 (abc 2022-04-04)")):
        script = tmp_path / tool
        script.write_text(f"#!/bin/sh\necho '{text}'\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(backend.RustMissing, match=r"too old \(rustc 1.60.0"):
        backend.build_editable(str(tmp_path))


def test_pip_install_without_rust_fails_with_the_message(tmp_path: Path) -> None:
    """What a user sees: pip runs the backend in its isolated environment and prints our message."""
    env = {k: v for k, v in os.environ.items() if k not in ("CARGO_TARGET_DIR", "VIRTUAL_ENV")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + "/usr/bin" + os.pathsep + "/bin"
    env["PIP_NO_INDEX"] = "1"  # the build requirement (maturin) must come from the machine, never the network
    if subprocess.run(["which", "cargo"], env=env, capture_output=True).returncode == 0:
        pytest.skip("cargo is on the system PATH here; the message is covered by the unit tests above")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                           str(tmp_path), str(REPO)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Install Rust 1.95 or newer" in output and "rustup" in output
    assert "Traceback" not in output  # the message, not a stack

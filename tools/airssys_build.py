"""The PEP 517 build backend of airssys-web: maturin, after checking that Rust is installed.

airssys-web ships a Rust extension (``airssys_web._native``, built from ``src/`` with maturin). Installing from
source without a Rust toolchain would make maturin try to download one from the internet; instead this backend
stops at once with a message that says what to install. It also keeps cargo's build directory outside the source
tree (``~/.cache/airssys-web/target`` unless ``CARGO_TARGET_DIR`` is set), so a rebuild reuses the compiled
wasmtime instead of compiling it again (several minutes).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MIN_RUST = (1, 95)

HELP = (
    "airssys-web builds a Rust extension (its wasmtime runtime core) when installed from source, and {what}.\n"
    "Install Rust {need} or newer with cargo, then retry:\n"
    "  - with rustup:  curl https://sh.rustup.rs -sSf | sh   (then open a new shell)\n"
    "  - or your system's packages (Debian/Ubuntu: apt-get install cargo rustc, if new enough).\n"
    "The first build compiles wasmtime and takes several minutes; later builds reuse ~/.cache/airssys-web/target."
)


class RustMissing(SystemExit):
    """Stops the build with the message alone (no traceback): what pip shows the user."""

    def __str__(self) -> str:
        return str(self.code)


def _check_rust() -> None:
    need = ".".join(map(str, MIN_RUST))
    cargo = shutil.which("cargo")
    if cargo is None:
        raise RustMissing(HELP.format(what="no Rust toolchain (cargo) was found on PATH", need=need))
    try:
        out = subprocess.run(["rustc", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise RustMissing(HELP.format(what="cargo was found but rustc could not be run", need=need)) from None
    m = re.search(r"(\d+)\.(\d+)", out)
    if m and (int(m.group(1)), int(m.group(2))) < MIN_RUST:
        raise RustMissing(HELP.format(what=f"the Rust found is too old ({out.strip()})", need=need))


def _prepare() -> None:
    _check_rust()
    os.environ["MATURIN_NO_INSTALL_RUST"] = "1"  # never download a toolchain behind the user's back
    os.environ.setdefault("CARGO_TARGET_DIR", str(Path.home() / ".cache" / "airssys-web" / "target"))


def _maturin() -> Any:
    import maturin  # type: ignore[import-not-found]  # present only inside the isolated build environment

    return maturin


def get_requires_for_build_wheel(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    _prepare()
    return list(_maturin().get_requires_for_build_wheel(config_settings))


def get_requires_for_build_editable(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    _prepare()
    return list(_maturin().get_requires_for_build_wheel(config_settings))


def get_requires_for_build_sdist(config_settings: Mapping[str, Any] | None = None) -> list[str]:
    return list(_maturin().get_requires_for_build_sdist(config_settings))


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Mapping[str, Any] | None = None
                                     ) -> str:
    _prepare()
    return str(_maturin().prepare_metadata_for_build_wheel(metadata_directory, config_settings))


def prepare_metadata_for_build_editable(metadata_directory: str, config_settings: Mapping[str, Any] | None = None
                                        ) -> str:
    _prepare()
    return str(_maturin().prepare_metadata_for_build_wheel(metadata_directory, config_settings))


def build_wheel(wheel_directory: str, config_settings: Mapping[str, Any] | None = None,
                metadata_directory: str | None = None) -> str:
    _prepare()
    return str(_maturin().build_wheel(wheel_directory, config_settings, metadata_directory))


def build_editable(wheel_directory: str, config_settings: Mapping[str, Any] | None = None,
                   metadata_directory: str | None = None) -> str:
    _prepare()
    return str(_maturin().build_editable(wheel_directory, config_settings, metadata_directory))


def build_sdist(sdist_directory: str, config_settings: Mapping[str, Any] | None = None) -> str:
    return str(_maturin().build_sdist(sdist_directory, config_settings))

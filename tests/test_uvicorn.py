"""The uvicorn internals ``serve --workers`` relies on (airssys_web/web/_uvicorn.py) are in the installed uvicorn,
and the installed uvicorn is in the range pyproject.toml pins. An upgrade that breaks either fails here, by name,
rather than in a worker process. (The supervisor itself runs for real in test_workers.py.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import uvicorn
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from uvicorn.supervisors import Multiprocess

from airssys_web.errors import AirssysError
from airssys_web.web import _uvicorn

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_installed_uvicorn_has_what_we_use() -> None:
    assert _uvicorn.missing_internals() == []


def test_the_pin_is_the_tested_range_and_holds_the_installed_version() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (pin,) = [Requirement(d) for d in dependencies if Requirement(d).name == "uvicorn"]
    assert pin.specifier == SpecifierSet(_uvicorn.TESTED)
    assert uvicorn.__version__ in pin.specifier, f"uvicorn {uvicorn.__version__} is outside the pin {pin}"


class _SharedSockets(Multiprocess):
    """A future uvicorn whose processes share the list they were given at start."""

    def init_processes(self) -> None:
        pass


class _OtherArguments:
    def __init__(self, config: object, target: object, sockets: object) -> None:
        pass


def test_a_changed_supervisor_is_named() -> None:
    assert _uvicorn.missing_internals(_SharedSockets) == [
        "Multiprocess.init_processes reading self.sockets for each process it starts"]
    assert _uvicorn.missing_internals(_OtherArguments)[:2] == [
        "Multiprocess(config, sockets) (it takes config, target, sockets)", "Multiprocess.init_processes"]
    with pytest.raises(AirssysError, match=rf"uvicorn {uvicorn.__version__} lacks what `serve --workers` uses .*"
                                           r"install uvicorn>=0\.55,<0\.56"):
        _uvicorn.check_internals(_SharedSockets)


def test_import_app_says_what_was_not_found() -> None:
    with pytest.raises(AirssysError, match=r"--app 'no_such_module_x:app': Could not import module"):
        _uvicorn.import_app("no_such_module_x:app")
    with pytest.raises(AirssysError, match=r"--app 'json:nothing': Attribute \"nothing\" not found"):
        _uvicorn.import_app("json:nothing")

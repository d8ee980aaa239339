"""``airssys-web new`` -> ``build`` -> ``deploy`` -> a request, for each language, as a new user would go."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import REPO
from starlette.applications import Starlette

from airssys_web import AirssysMiddleware
from airssys_web.cli import cli
from airssys_web.errors import AirssysError, InvalidName
from airssys_web.guest.scaffold import scaffold

Server = Callable[..., AbstractContextManager[str]]
LANGS = [
    pytest.param("wat", id="wat"),
    pytest.param("js", id="js", marks=pytest.mark.skipif(shutil.which("npm") is None, reason="needs node and npm")),
    pytest.param("python", id="python", marks=pytest.mark.slow),
]


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("lang", LANGS)
def test_new_build_deploy_request(lang: str, tmp_path: Path, uvicorn_server: Server) -> None:
    name = f"scaffold-{lang}"  # fixed names: the build cache serves later runs
    out = run("new", name, "--lang", lang, "--dir", str(tmp_path / name))
    assert f"({lang})" in out and "airssys.toml" in out and "test_app.py" in out
    source = tmp_path / name
    built = run("build", str(source))
    assert built.startswith(f"built {source / name}.wasm ({lang}, ") and "satisfies airssys:web/route" in built
    registry = tmp_path / "registry"
    # Deployed at a route that is not its name: a scaffold has no fixed prefix (issue #20, 8), the host tells it
    # where it is mounted.
    route = "/elsewhere/deep"
    run("deploy", name, str(source / f"{name}.wasm"), "--route", route, "--version", "0.1.0",
        "--registry", str(registry))
    with uvicorn_server(AirssysMiddleware(Starlette(), registry=registry)) as url:
        if lang == "wat":
            r = httpx.get(f"{url}{route}/x")
            assert r.text == f"{route}/x"
        else:
            r = httpx.get(f"{url}{route}")
            assert r.text == f"Hello from {name}!\n"  # the greeting granted by the scaffold's airssys.toml
            assert httpx.put(f"{url}{route}/items/1", json={"t": 1}).status_code == 201  # kv granted too
            assert httpx.get(f"{url}{route}/items/1").json() == {"id": 1, "t": 1}
        assert r.status_code == 200 and r.headers["x-airssys-version"] == f"{name}@0.1.0"


@pytest.mark.parametrize("lang", LANGS)
def test_the_scaffolded_tests_pass(lang: str, tmp_path: Path) -> None:
    made = scaffold(f"scaffold-{lang}", lang, directory=tmp_path / f"scaffold-{lang}")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(made.directory)],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout


@pytest.mark.parametrize("lang", [p for p in LANGS if p.values[0] != "wat"])
def test_the_scaffolded_middleware_tests_pass(lang: str, tmp_path: Path) -> None:
    out = run("new", f"stage-{lang}", "--lang", lang, "--kind", "middleware", "--dir", str(tmp_path / "s"))
    assert f"({lang} middleware)" in out and "pipeline set" in out and "deploy stage-" in out
    built = run("build", str(tmp_path / "s"))
    assert "satisfies airssys:web/middleware" in built
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "s")],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_there_is_no_wat_middleware_template(tmp_path: Path) -> None:
    with pytest.raises(AirssysError, match="no wat template for a middleware: write it in python or js"):
        scaffold("stage", "wat", directory=tmp_path / "s", kind="middleware")
    assert not (tmp_path / "s").exists()


def test_names_and_directories_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidName):
        scaffold("Bad Name", "python", directory=tmp_path / "x")
    with pytest.raises(AirssysError, match="unknown language 'rust'"):
        scaffold("ok", "rust", directory=tmp_path / "x")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(AirssysError, match="already exists and is not empty"):
        scaffold("taken", "wat", directory=tmp_path / "taken")
    made = scaffold("taken", "wat", directory=tmp_path / "taken", force=True)
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in made.files) == [".gitignore", "airssys.toml", "taken.wat", "test_app.py"]


def test_new_reports_errors_on_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["new", "Bad Name", "--dir", str(tmp_path / "x")])
    assert result.exit_code == 2 and result.stderr.startswith("error: invalid") and "Bad Name" in result.stderr

"""``airssys-web call FILE.wasm [METHOD] PATH``: one request through a component, no server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from airssys_web.cli import cli

Guest = Callable[[str], bytes]


@pytest.fixture
def guest_file(wat_guest: Guest, tmp_path: Path) -> Callable[[str], Path]:
    def write(name: str) -> Path:
        path = tmp_path / f"{name}.wasm"
        path.write_bytes(wat_guest(name))
        return path

    return write


def call(*args: str, input: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["call", *args], input=input)
    return result.exit_code, result.stdout, result.stderr


def test_get_prints_the_body_and_the_status_on_stderr(guest_file: Callable[[str], Path]) -> None:
    code, out, err = call(str(guest_file("hello")), "/anything")
    assert code == 0 and out == "hello from wat"
    assert err.splitlines()[0] == "HTTP 200 OK" and "content-type: text/plain; charset=utf-8" in err


def test_method_body_headers_and_include(guest_file: Callable[[str], Path], tmp_path: Path) -> None:
    echo = str(guest_file("echo"))
    code, out, _ = call(echo, "post", "/p?q=1", "--body", "hi there", "-H", "X-A: b", "-i")
    assert code == 0
    head, body = out.split("\n\n", 1)
    assert body == "hi there"
    assert head.splitlines()[0] == "HTTP 200 OK" and "x-echo-method: POST" in head and "x-echo-query: q=1" in head
    (tmp_path / "body.bin").write_bytes(b"from a file")
    assert call(echo, "PUT", "/", "--body", f"@{tmp_path / 'body.bin'}")[1] == "from a file"
    assert call(echo, "PUT", "/", "--body", "@-", input=b"from stdin")[1] == "from stdin"
    assert call(echo, "POST", "/", "--json", '{"a": 1}')[1] == '{"a": 1}'


def test_grants_and_the_manifest_apply(guest_file: Callable[[str], Path]) -> None:
    wasm = guest_file("config_only")
    assert call(str(wasm), "/", "--config", "greeting=hej")[1] == "hej"
    (wasm.parent / "airssys.toml").write_text('[grants]\nconfig = { greeting = "manifest" }\n')
    assert call(str(wasm), "/")[1] == "manifest"


def test_a_guest_failure_exits_1_with_the_reason(guest_file: Callable[[str], Path]) -> None:
    code, _, err = call(str(guest_file("trap")), "/")
    assert code == 1 and err.startswith("error: the component failed: ") and "trapped" in err
    code, _, err = call(str(guest_file("spin")), "/", "--timeout", "0.2")
    assert code == 1 and "deadline" in err


@pytest.mark.parametrize(("args", "message"), [
    (["GET", "nope"], "the path must start with '/'"),
    (["FETCH", "/"], "unknown method 'FETCH'"),
    (["GET", "/", "extra"], "expected [METHOD] PATH"),
    (["/", "--json", "{bad"], "--json is not valid JSON"),
    (["/", "-H", "no-colon"], "--header expects 'NAME: VALUE'"),
    (["/", "--timeout", "-1"], "invalid --timeout"),
])
def test_bad_input_is_one_line(guest_file: Callable[[str], Path], args: list[str], message: str) -> None:
    code, _, err = call(str(guest_file("echo")), *args)
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    code, _, err = call(str(tmp_path / "none.wasm"), "/")
    assert code == 2 and "file not found" in err and "none.wasm" in err


def test_route_calls_it_as_deployed_there(py_echo_path: Path) -> None:
    code, out, _ = call(str(py_echo_path), "--route", "/api", "GET", "/api/x")
    assert code == 0
    assert ["x-airssys-route", "/api"] in json.loads(out)["headers"]
    code, _, err = call(str(py_echo_path), "--route", "api", "/api/x")
    assert code == 2 and "invalid route 'api'" in err

"""Declared needs: the comparison with grants, --grant-declared, and the custom section in the .wasm."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import make_generation, text_component

from airssys_web.capabilities.grants import Capability, Grants
from airssys_web.capabilities.needs import (
    SECTION_NAME,
    Needs,
    check_needs,
    covers,
    embed_needs,
    grant_declared,
    iter_sections,
    read_custom_section,
    read_needs,
    with_defaults,
    write_custom_section,
)
from airssys_web.capabilities.outbound import AllowedHost
from airssys_web.errors import CapabilityError, InvalidComponent

NEEDS = Needs.from_dict({
    "outbound": ["https://api.example.com", "https://*.cdn.example.com"],
    "files": ["/data:ro", "/out:rw"],
    "config": {"greeting": "Hello", "api_url": ""},
    "secrets": ["token"],
    "kv": True,
})


@pytest.mark.parametrize(("grant", "need", "expected"), [
    ("https://api.example.com", "https://api.example.com", True),
    ("https://*.example.com", "https://api.example.com", True),
    ("https://*.example.com", "https://*.cdn.example.com", True),
    ("https://*.example.com", "https://example.com", False),
    ("https://api.example.com", "https://*.example.com", False),
    ("*://api.example.com:*", "https://api.example.com:8443", True),
    ("https://api.example.com", "http://api.example.com", False),
    ("https://api.example.com:8000..9000", "https://api.example.com:8443", True),
    ("https://api.example.com:8443", "https://api.example.com:8000..9000", False),
    ("http://10.0.0.0/8:*", "http://10.1.2.3:80", True),
    ("http://10.0.0.0/8:*", "http://11.1.2.3:80", False),
    ("http://*:*", "http://10.1.2.3:80", True),
])
def test_covers(grant: str, need: str, expected: bool) -> None:
    assert covers(AllowedHost(grant), AllowedHost(need)) is expected


def test_check_lines_up_every_need_and_reports_unused_grants() -> None:
    grants = Grants.of(
        Capability.network_outbound("https://api.example.com"),
        Capability.network_outbound("https://img.cdn.example.com"),  # narrower than the declared wildcard
        Capability.network_outbound("https://unrelated.example.org"),
        Capability.file_read("/srv/data", "/data"),
        Capability.file_read("/srv/out", "/out"),  # declared rw, granted ro
        Capability.config("api_url", "https://api.example.com"),
        Capability.secret("token", "v"),
        Capability.config("debug", "1"),
    )
    check = check_needs(NEEDS, grants)
    table = {(r.kind, r.need or r.grant): r.status for r in check.rows}
    assert table == {
        ("outbound", "https://api.example.com"): "granted",
        ("outbound", "https://*.cdn.example.com"): "narrowed",
        ("file", "/data:ro"): "granted",
        ("file", "/out:rw"): "missing",
        ("config", "greeting"): "default",
        ("config", "api_url"): "granted",
        ("secret", "token"): "granted",
        ("kv", "kv"): "missing",
        ("outbound", "https://unrelated.example.org"): "unused",
        ("config", "debug=1"): "unused",
    }
    assert all("v" != r.grant.rpartition("=")[2] for r in check.rows if r.kind == "secret")
    with pytest.raises(CapabilityError, match=r"file /out:rw \(--allow-file HOST_DIR:/out:rw\); kv kv \(--kv\)"):
        check.raise_for_missing()


def test_nothing_declared_checks_nothing() -> None:
    check = check_needs(None, Grants.of(Capability.kv()))
    assert not check.declared and not check.missing and [r.status for r in check.rows] == ["undeclared"]
    check.raise_for_missing()
    empty = check_needs(Needs(), Grants.of(Capability.kv()))  # declares that it needs nothing
    assert empty.declared and [r.status for r in empty.rows] == ["unused"]


def test_grant_declared_adds_what_the_host_can_supply() -> None:
    granted = with_defaults(NEEDS, grant_declared(NEEDS, Grants()))
    assert {str(h) for h in granted.outbound.grants} == {"https://api.example.com", "https://*.cdn.example.com"}
    assert granted.kv is not None and dict(granted.config) == {"greeting": "Hello"}
    missing = {r.need for r in check_needs(NEEDS, granted).missing}
    assert missing == {"/data:ro", "/out:rw", "api_url", "token"}  # values only the operator has
    assert with_defaults(NEEDS, Grants.of(Capability.config("greeting", "Hi"))).config["greeting"] == "Hi"


@pytest.mark.parametrize(("data", "message"), [
    ({"outbound": "https://a.com"}, "must be a list of strings"),
    ({"files": ["data"]}, "absolute path"),
    ({"kv": "yes"}, "must be true or false"),
    ({"config": {"a": 1}}, "must be a string"),
    ({"secrets": ["bad key"]}, "is invalid"),
    ({"network": []}, "unknown key"),
])
def test_bad_declarations(data: dict[str, object], message: str) -> None:
    with pytest.raises(CapabilityError, match=message):
        Needs.from_dict(data)


def test_needs_union_and_dict_round_trip() -> None:
    assert Needs.from_dict(NEEDS.to_dict()) == NEEDS
    merged = Needs.from_dict({"outbound": ["https://a.com"]}) | Needs.from_dict({"kv": True, "files": ["/d:rw"]})
    assert merged.kv and merged.files == (("/d", True),) and [str(h) for h in merged.outbound] == ["https://a.com"]


def test_section_is_embedded_read_back_and_replaced() -> None:
    wasm = text_component("needs")
    assert read_needs(wasm) is None
    tagged = embed_needs(wasm, NEEDS)
    assert read_needs(tagged) == NEEDS
    retagged = embed_needs(tagged, Needs.from_dict({"kv": True}))
    assert read_needs(retagged) == Needs.from_dict({"kv": True})
    assert len(retagged) < len(tagged)  # replaced, not appended twice
    ours = SECTION_NAME.encode()
    assert sum(1 for sid, start, end in iter_sections(retagged) if sid == 0 and ours in retagged[start:end]) == 1
    gen = make_generation(retagged, name="tagged")  # still a valid component that serves
    assert gen.call("GET", "/").body == b"needs"
    gen.close()


@pytest.mark.parametrize(("payload", "message"), [
    (b"not json", "not valid JSON"),
    (b'{"version": 2}', "unsupported format"),
    (b'{"version": 1, "kv": 3}', "must be true or false"),
    (b"[1]", "unsupported format"),
])
def test_bad_sections_are_invalid_components(payload: bytes, message: str) -> None:
    wasm = write_custom_section(text_component("x"), SECTION_NAME, payload)
    with pytest.raises(InvalidComponent, match=message):
        read_needs(wasm)


def test_malformed_binaries() -> None:
    for data in (b"", b"\x00asm\x0d\x00\x01\x00\x01", b"\x00asm\x0d\x00\x01\x00\x00\xff\xff\xff\xff\x0f"):
        with pytest.raises(InvalidComponent):
            read_needs(data)
        assert read_needs(data, lenient=True) is None


@given(st.binary(max_size=64))
def test_section_reader_never_crashes(tail: bytes) -> None:
    data = b"\x00asm\x0d\x00\x01\x00" + tail
    try:
        sections = iter_sections(data)
    except InvalidComponent:
        return
    assert all(8 < start <= end <= len(data) for _, start, end in sections)
    try:
        read_custom_section(data, SECTION_NAME)
    except InvalidComponent:
        pass


@given(st.binary(max_size=300), st.text(min_size=1, max_size=20))
def test_written_sections_read_back(payload: bytes, name: str) -> None:
    wasm = text_component("prop")
    assert read_custom_section(write_custom_section(wasm, name, payload), name) == payload


def test_unavailable_imports_are_rows_but_not_missing() -> None:
    """A Spin component's imports the host does not provide are shown, never refused."""
    for needs in (None, Needs(kv=True)):
        check = check_needs(needs, Grants.of([Capability.kv()]), unavailable=["spin:mysql@3.0.0 (mysql)"])
        assert [(r.kind, r.need, r.status) for r in check.unavailable] == [
            ("import", "spin:mysql@3.0.0 (mysql)", "unavailable")]
        assert not check.missing
        check.raise_for_missing()

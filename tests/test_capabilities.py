"""Grant values: the named constructors, the CLI/manifest text forms, the settings round-trip and redaction."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airssys_web.capabilities.grants import (
    REDACTED,
    Capability,
    ConfigValue,
    FileAccess,
    Grants,
    KeyValue,
    NetworkOutbound,
    Secret,
    parse_file_grant,
    parse_grant,
    parse_pair,
)
from airssys_web.capabilities.kv import KVQuota
from airssys_web.capabilities.outbound import AllowedHost
from airssys_web.errors import CapabilityError


def test_named_constructors_mirror_the_seed() -> None:
    assert Capability.network_outbound("https://API.example.com:443") == NetworkOutbound(
        AllowedHost("https://api.example.com"))
    assert Capability.file_read("/data") == FileAccess("/data", "/data", writable=False)
    assert Capability.file_write("/srv/out", "/out") == FileAccess("/srv/out", "/out", writable=True)
    assert Capability.config("greeting", "hi") == ConfigValue("greeting", "hi")
    assert Capability.kv(max_keys=5) == KeyValue(KVQuota(max_keys=5))
    assert Capability.secret("token", "s3cr3t").value == "s3cr3t"


@pytest.mark.parametrize(("text", "expected"), [
    ("/srv/data", FileAccess("/srv/data", "/srv/data", False)),
    ("/srv/data:/data", FileAccess("/srv/data", "/data", False)),
    ("/srv/data:/data:ro", FileAccess("/srv/data", "/data", False)),
    ("/srv/data:/data:rw", FileAccess("/srv/data", "/data", True)),
    ("/srv/data:rw", FileAccess("/srv/data", "/srv/data", True)),
    ("./rel:/data/", FileAccess("./rel", "/data", False)),
    ("/srv:/a//b/", FileAccess("/srv", "/a/b", False)),
])
def test_file_grant_forms(text: str, expected: FileAccess) -> None:
    assert parse_file_grant(text) == expected
    assert parse_grant("file", text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("", "expects HOST_DIR:GUEST_DIR"),
    (":/data", "expects HOST_DIR:GUEST_DIR"),
    ("/a:/b:/c", "host paths containing ':'"),
    ("/a:/b:rx", "host paths containing ':'"),
    ("/a:data", "must be an absolute path"),
    ("/a:/../etc", "may not contain '..'"),
    ("/a:/x/../y", "may not contain '..'"),
    ("relative", "give the guest directory too"),
    ("/a:/b\\c", "may not contain"),
    ("/a:/b\x01", "may not contain"),
])
def test_bad_file_grants_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(CapabilityError, match=message):
        parse_file_grant(text)


def test_file_grant_checked_resolves_and_requires_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    assert parse_file_grant("d:/data").checked(tmp_path) == FileAccess(str(tmp_path / "d"), "/data", False)
    (tmp_path / "link").symlink_to(tmp_path / "d")
    assert parse_file_grant("link:/data").checked(tmp_path).host == str(tmp_path / "d")
    for bad in ("f:/data", "missing:/data"):
        with pytest.raises(CapabilityError, match="not an existing directory"):
            parse_file_grant(bad).checked(tmp_path)


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("config", "novalue", "expects KEY=VALUE"),
    ("config", "=v", "expects KEY=VALUE"),
    ("config", "1abc=v", "key '1abc' is invalid"),
    ("config", "a b=v", "is invalid"),
    ("secret", "k", "expects KEY=VALUE"),
    ("outbound", "ftp://example.com", "not supported"),
    ("outbound", "https://user@example.com", "not allowed"),
    ("bogus", "x", "unknown grant kind"),
])
def test_bad_grants(kind: str, text: str, message: str) -> None:
    with pytest.raises(CapabilityError, match=message):
        parse_grant(kind, text)


def test_pair_keeps_equals_signs_in_the_value() -> None:
    assert parse_pair("url=https://x/?a=b", "--config") == ("url", "https://x/?a=b")
    assert parse_pair("empty=", "--config") == ("empty", "")


def test_config_value_size_is_bounded() -> None:
    with pytest.raises(CapabilityError, match="at most 65536"):
        ConfigValue("big", "x" * 70_000)
    with pytest.raises(CapabilityError, match="must be a string"):
        ConfigValue("n", 5)  # type: ignore[arg-type]


def test_secrets_never_show_their_value() -> None:
    secret = Capability.secret("token", "hunter2-value")
    grants = Grants.of(secret, Capability.config("a", "b"))
    for text in (repr(secret), str(secret), repr(grants), str(grants.describe())):
        assert "hunter2-value" not in text
        assert REDACTED in text


class _Store:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def put(self, value: str) -> str:
        ref = f"hmac-sha256:{len(self.values):064x}"
        self.values[ref] = value
        return ref


def test_settings_round_trip_keeps_secrets_out() -> None:
    grants = Grants.of(
        Capability.network_outbound("https://*.example.com"),
        Capability.network_outbound("http://127.0.0.1:*"),
        Capability.file_read("/srv/data", "/data"),
        Capability.file_write("/srv/out", "/out"),
        Capability.config("greeting", "hi"),
        Capability.secret("token", "hunter2-value"),
        Capability.kv(max_total_bytes=1024),
    )
    store = _Store()
    settings = grants.to_settings(store)
    assert "hunter2-value" not in json.dumps(settings)
    assert list(store.values.values()) == ["hunter2-value"]
    back = Grants.from_settings(json.loads(json.dumps(settings)))
    assert back.outbound == grants.outbound and back.files == grants.files and back.config == grants.config
    assert back.kv == grants.kv
    assert back.secrets["token"].value is None and back.secrets["token"].ref in store.values
    assert back.describe() == grants.describe()
    assert back.to_settings() == settings  # references are kept as they are
    with pytest.raises(CapabilityError, match="secret store"):
        grants.to_settings()
    assert grants.to_settings(reveal=True)["secrets"] == {"token": "hunter2-value"}


def test_user_written_settings_are_accepted() -> None:
    grants = Grants.from_settings({"outbound": ["https://api.example.com"], "files": [{"host": "/srv", "guest": "/d"}],
                                   "config": {"a": "b"}, "secrets": {"t": "v"}, "kv": True})
    assert [k for k, _ in grants.describe()] == ["outbound", "file", "config", "secret", "kv"]
    assert grants.files[0].mode == "ro"


@pytest.mark.parametrize(("settings", "message"), [
    ({"outbound": "https://a.com"}, "must be a list"),
    ({"files": [{"host": "/a", "mode": "rx"}]}, "must be {host, guest, mode"),
    ({"files": ["/a:/b"]}, "must be a list"),
    ({"config": ["a"]}, "table of named values"),
    ({"kv": {"max_keys": 0}}, "max_keys=0"),
    ({"kv": {"bogus": 1}}, "unknown kv quota"),
    ({"secrets": {"t": {"ref": "nope"}}}, "malformed stored reference"),
    ({"secrets": {"t": 5}}, "must be a string"),
])
def test_bad_settings(settings: dict[str, object], message: str) -> None:
    with pytest.raises(CapabilityError, match=message):
        Grants.from_settings(settings)


def test_later_grants_win_and_keys_are_config_or_secret() -> None:
    grants = Grants.of(Capability.config("k", "1"), Capability.config("k", "2"), Capability.file_read("/a", "/d"),
                       Capability.file_write("/b", "/d"))
    assert dict(grants.config) == {"k": "2"}
    assert grants.files == (FileAccess("/b", "/d", True),)
    flipped = Grants.of(grants, Capability.secret("k", "s"))
    assert "k" not in flipped.config and "k" in flipped.secrets
    assert not Grants() and bool(grants)


def test_grants_are_immutable() -> None:
    grants = Grants.of(Capability.config("a", "b"))
    with pytest.raises(AttributeError):
        grants.kv = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        grants.config["x"] = "y"  # type: ignore[index]


# -- property-based: the parsers accept their own output and never fail with anything but CapabilityError ------

_segment = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=12).filter(
    lambda s: s not in (".", ".."))
_abs_path = st.lists(_segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))


@given(host=_abs_path, guest=_abs_path, writable=st.booleans())
def test_file_grant_text_round_trips(host: str, guest: str, writable: bool) -> None:
    grant = FileAccess.make(host, guest, writable=writable)
    assert parse_file_grant(str(grant)) == grant
    assert Grants.from_settings(Grants.of(grant).to_settings()).files == (grant,)


@given(st.text(max_size=40))
def test_file_grant_parser_fails_cleanly(text: str) -> None:
    try:
        grant = parse_file_grant(text)
    except CapabilityError:
        return
    assert grant.guest.startswith("/") and ".." not in grant.guest.split("/")
    assert parse_file_grant(str(grant)) == grant


_label = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10)
_name = st.tuples(st.lists(_label, max_size=2), _label.map(lambda s: "a" + s)).map(lambda p: ".".join([*p[0], p[1]]))
_host = st.one_of(_name, _name.map(lambda n: "*." + n), st.just("*"),
                  st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: f"[{a}]"))
_port = st.one_of(st.just(""), st.just(":*"), st.integers(1, 65535).map(lambda p: f":{p}"))


@given(scheme=st.sampled_from(["http", "https", "*"]), host=_host, port=_port)
def test_outbound_grants_round_trip(scheme: str, host: str, port: str) -> None:
    text = f"{scheme}://{host}{port}"
    try:
        grant = parse_grant("outbound", text)
    except CapabilityError as exc:
        assert scheme == "*" and port == "" and "need a port" in str(exc)
        return
    assert isinstance(grant, NetworkOutbound)
    assert parse_grant("outbound", str(grant)) == grant
    assert Grants.from_settings(Grants.of(grant).to_settings()).outbound.grants == (grant.host,)


@given(st.text(max_size=60))
def test_outbound_parser_fails_cleanly(text: str) -> None:
    try:
        grant = parse_grant("outbound", text)
    except CapabilityError:
        return
    assert parse_grant("outbound", str(grant)) == grant


@given(key=st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True), value=st.text(max_size=50))
def test_config_pairs_round_trip(key: str, value: str) -> None:
    try:
        grant = parse_grant("config", f"{key}={value}")
    except CapabilityError:
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in value)  # lone surrogates are not UTF-8
        return
    assert grant == ConfigValue(key, value)
    secret = parse_grant("secret", f"{key}={value}")
    assert isinstance(secret, Secret) and secret.value == value
    assert repr(secret) == f"Secret({key!r}, {REDACTED!r})" and str(secret) == f"{key}={REDACTED}"


def test_kv_store_labels_round_trip() -> None:
    """Spin store labels beside 'default' (each its own namespace), or without 'default' when a Spin manifest
    names none; the settings JSON carries them, quotas stay as they were."""
    grant = Capability.kv(stores=["sessions", "cache", "default"], max_keys=5)
    assert grant.stores == ("cache", "sessions") and grant.labels == ("default", "cache", "sessions")
    assert "stores default, cache, sessions" in str(grant)
    settings = Grants.of([grant]).to_settings()
    assert settings["kv"]["stores"] == ["cache", "sessions"] and settings["kv"]["max_keys"] == 5
    assert Grants.from_settings(settings).kv == grant
    only = KeyValue(stores=("cache",), default=False)
    assert only.labels == ("cache",) and Grants.from_settings(Grants.of([only]).to_settings()).kv == only
    with pytest.raises(CapabilityError, match="must name another store"):
        KeyValue(default=False)
    with pytest.raises(CapabilityError, match="'stores' must be a list"):
        Grants.from_settings({"kv": {"stores": "cache"}})

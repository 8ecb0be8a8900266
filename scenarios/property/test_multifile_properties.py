"""Multi-file folders through real PostgreSQL: export -> import -> export is byte-identical;
a Baileys-written folder imports and exports to the same files; a damaged folder is refused
with every damaged file named and nothing written.

These are the harness's own maintenance commands, which work on the tables whatever target wrote
them: they run on `maintenance_store` (the reference store), not on the target under test.
Each example uses fresh company ids and its own temporary folders (hence the suppressed
function-scoped-fixture health check: the store fixture is deliberately shared).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fixtures.strategies import creds, key_type_values
from harness.authstate import codec
from harness.authstate.multifile import (
    BadFolder,
    ExportRefused,
    export_company,
    import_folder,
    key_file_name,
)
from harness.authstate.multifile.names import name_too_long

SETTINGS = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


def _company() -> str:
    return "c" + uuid.uuid4().hex[:20]


@contextmanager
def _tmpdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mf-prop-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@st.composite
def auth_states(draw: st.DrawFn, max_batches: int = 4) -> tuple[dict, dict[str, dict]]:
    """(creds, {type: {id: value}}): realistic values, ids sometimes edge ids (`/ :`, Unicode,
    empty, 1024 characters)."""
    keys: dict[str, dict[str, Any]] = {}
    for key_type, entries in draw(st.lists(key_type_values(max_ids=5), max_size=max_batches)):
        keys.setdefault(key_type, {}).update(entries)
    return draw(creds()), keys


def _unexportable(keys: dict[str, dict]) -> bool:
    """Ids Baileys' file layout cannot hold: names too long, or two keys on one file name."""
    names = [key_file_name(t, i) for t, ids in keys.items() for i in ids]
    return any(name_too_long(n) for n in names) or len(set(names)) != len(names) or \
        "creds.json" in names


@SETTINGS
@given(state=auth_states())
def test_export_import_export_is_byte_identical(maintenance_store, state) -> None:
    creds_value, keys = state
    first, second = _company(), _company()
    store = maintenance_store.store
    maintenance_store.run(store.write_creds(first, creds_value))
    maintenance_store.run(store.set_keys(first, keys))
    with _tmpdir() as tmp:
        if _unexportable(keys):
            event("refused: ids Baileys' file layout cannot hold")
            with pytest.raises(ExportRefused):
                maintenance_store.run(export_company(store, first, tmp / "a"))
            assert not (tmp / "a").exists()
            return
        exported = maintenance_store.run(export_company(store, first, tmp / "a"))
        event(f"ids from the manifest: {'some' if exported.manifest_entries else 'none'}")
        imported = maintenance_store.run(import_folder(store, second, tmp / "a"))
        assert imported.counts == exported.counts == {t: len(v) for t, v in sorted(keys.items())}
        assert imported.via_manifest == exported.manifest_entries
        assert maintenance_store.run(store.read_creds(second)) == creds_value
        for key_type, entries in keys.items():
            assert maintenance_store.run(store.get_keys(second, key_type, list(entries))) == entries
        maintenance_store.run(export_company(store, second, tmp / "b"))
        assert _files(tmp / "a") == _files(tmp / "b")


@SETTINGS
@given(state=auth_states())
def test_import_of_a_baileys_folder_then_export_gives_the_same_files(maintenance_store,
                                                                     state) -> None:
    """The folder is written as Baileys' writer would (`JSON.stringify(v, BufferJSON.replacer)`
    in the value's own key order). Export gives the same file names and the same JSON; object
    keys may come back in JSONB's order (Baileys does not depend on it), so the bytes are
    compared as a multiset, and a second round trip is byte-identical."""
    creds_value, keys = state
    if _unexportable(keys):
        return
    company = _company()
    with _tmpdir() as tmp:
        folder = tmp / "baileys"
        folder.mkdir()
        (folder / "creds.json").write_text(codec.dumps(creds_value), encoding="utf-8")
        for key_type, entries in keys.items():
            for key_id, value in entries.items():
                (folder / key_file_name(key_type, key_id)).write_text(codec.dumps(value),
                                                                      encoding="utf-8")
        maintenance_store.run(import_folder(maintenance_store.store, company, folder))
        maintenance_store.run(export_company(maintenance_store.store, company, tmp / "out"))
        original, exported = _files(folder), _files(tmp / "out")
        manifest = {n for n in exported if n.startswith(".")}
        assert set(exported) - manifest == set(original)
        for name, data in original.items():
            assert sorted(exported[name]) == sorted(data), name
            assert codec.loads(exported[name]) == codec.loads(data), name
        again = _company()
        maintenance_store.run(import_folder(maintenance_store.store, again, tmp / "out"))
        maintenance_store.run(export_company(maintenance_store.store, again, tmp / "out2"))
        assert _files(tmp / "out2") == exported


_NOT_JSON = st.sampled_from([
    b"", b"   ", b"{", b"}", b"[1,", b'{"type":"Buffer","data":', b"undefined", b"NaN",
    b"{'single': 'quotes'}", b'{"a":1}}', b"\xef\xbb\xbf", b'{"a":1,}', b"\x00\x01\x02",
    b"\xff\xfe\xfd", b"<html>",
])


def _is_importable_json(data: bytes) -> bool:
    try:
        value = codec.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return True if value not in (None, False, 0, "") else False


@st.composite
def damage(draw: st.DrawFn, data: bytes) -> bytes:
    """Truncated (a torn write), random garbage, or malformed JSON: never a readable value."""
    kind = draw(st.sampled_from(["truncate", "garbage", "bad-json"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=200).filter(
            lambda b: not _is_importable_json(b)))
    return draw(_NOT_JSON)


@SETTINGS
@given(state=auth_states(max_batches=3), data=st.data())
def test_damaged_folders_are_refused_naming_every_damaged_file(maintenance_store, state,
                                                               data) -> None:
    creds_value, keys = state
    if _unexportable(keys):
        return
    source, target = _company(), _company()
    store = maintenance_store.store
    maintenance_store.run(store.write_creds(source, creds_value))
    maintenance_store.run(store.set_keys(source, keys))
    with _tmpdir() as tmp:
        folder = tmp / "f"
        maintenance_store.run(export_company(store, source, folder))
        names = sorted(n for n in _files(folder) if not n.startswith("."))
        damaged = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3,
                                     unique=True), label="damaged")
        for name in damaged:
            path = folder / name
            path.write_bytes(data.draw(damage(path.read_bytes()), label=name))
        with pytest.raises(BadFolder) as err:
            maintenance_store.run(import_folder(store, target, folder))
        assert sorted(name for name, _ in err.value.problems) == sorted(damaged)
        for name in damaged:
            assert name in str(err.value)
    assert maintenance_store.sql("SELECT count(*) FROM whatsapp_keys WHERE company_id = $1",
                          target) == 0
    assert maintenance_store.sql("SELECT count(*) FROM whatsapp_auth WHERE company_id = $1",
                          target) == 0


def test_damage_strategy_never_yields_a_readable_value() -> None:
    """Guard for the test above: every truncation of every exported value shape is unreadable
    (values are JSON objects, arrays or strings, never a top-level number)."""
    for value in ({"a": b"x"}, ["0", "1"], "123", {"token": b"\x00" * 5}):
        text = codec.dumps(value).encode()
        for cut in range(len(text)):
            assert not _is_importable_json(text[:cut]), (value, cut)
    assert json.loads(codec.dumps("x")) == "x"

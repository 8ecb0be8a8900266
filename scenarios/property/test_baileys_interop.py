"""Real Baileys folder -> import-files -> PostgreSQL -> export-files -> real Baileys reads it back.

Node side (scenarios/property/interop_js): Baileys 7 generates real state for a company
("alice") through its own code paths: `initAuthCreds`, `getNextPreKeys`, libsignal sessions with
two in-process peers (one PN, one LID; pkmsg + replies, so identity keys are saved and pre-keys
consumed), group sender keys (received and own) with sender-key-memory, `LIDMappingStore`,
device lists, trusted-contact tokens through Baileys' IQ handler (+ the `__index` sentinel),
app-state sync keys as decoded protobufs, and LT-hash app-state versions from Baileys' own patch
encoder. All of it stored by Baileys' own `useMultiFileAuthState`.
The exported folder is then read by Baileys' `useMultiFileAuthState` and compared key by key
with what Baileys held in memory and with Baileys' own folder (deep-equal, Buffers by bytes),
and used for real: messages both ways on the restored sessions, group messages on the restored
sender keys, a new contact's pkmsg on an exported pre-key, and an app-state patch decoded
against the exported LT hash with MAC validation.
Two node processes in all (node start-up and Baileys' ESM import take seconds).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.authstate.multifile import parse_file_name
from harness.cli import main

pytestmark = pytest.mark.interop

JS = Path(__file__).parent / "interop_js"
KEY_TYPES_BAILEYS_WRITES = {
    "pre-key", "session", "sender-key", "sender-key-memory", "app-state-sync-key",
    "app-state-sync-version", "lid-mapping", "device-list", "tctoken", "identity-key"}


def _script(baileys_node, name: str) -> str:
    """The script's source with `./common.mjs` pointed at a copy inside the node cache."""
    common = baileys_node.script_path((JS / "common.mjs").read_text(encoding="utf-8"))
    return (JS / name).read_text(encoding="utf-8").replace("'./common.mjs'",
                                                           f"'{common.as_uri()}'")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _sorted_json(data: bytes) -> str:
    return json.dumps(json.loads(data), sort_keys=True, ensure_ascii=False)


def _cli(*argv: str) -> None:
    assert main(list(argv)) == 0, argv


@pytest.fixture
def generated(baileys_node, tmp_path: Path) -> tuple[Path, dict]:
    folders = [tmp_path / name for name in ("alice", "bob", "carol")]
    proc = baileys_node.run_script(_script(baileys_node, "generate.mjs"), *map(str, folders),
                                   timeout=180)
    return tmp_path, json.loads(proc.stdout)


def test_baileys_folder_survives_postgres_and_baileys_reads_it_back(
        baileys_node, generated, pg_dsn: str, capsys) -> None:
    root, held = generated
    original, exported = root / "alice", root / "exported"
    assert set(held["keys"]) == KEY_TYPES_BAILEYS_WRITES  # every v7 key type, made by Baileys

    _cli("import-files", str(original), "--company", "acme", "--dsn", pg_dsn)
    _cli("export-files", str(exported), "--company", "acme", "--dsn", pg_dsn)
    printed = capsys.readouterr().out
    for type_, ids in held["keys"].items():
        assert type_ in printed
        for key_id in ids:  # JIDs are phone numbers: the CLI prints counts, never ids
            assert key_id not in printed or (key_id.isdigit() and len(key_id) < 3)

    before, after = _files(original), _files(exported)
    assert set(after) == set(before)  # same file names: Baileys' naming, nothing extra
    identical = {name for name in before if before[name] == after[name]}
    for name in set(before) - identical:
        # JSONB keeps object keys sorted (by length, then bytes), so a file may differ from
        # Baileys' own in key order only: same bytes in another order, same JSON.
        assert sorted(before[name]) == sorted(after[name]), name
        assert _sorted_json(before[name]) == _sorted_json(after[name]), name
    byte_identical_types = {"identity-key", "sender-key", "lid-mapping", "device-list",
                            "tctoken"}
    for name in before:
        ref = parse_file_name(name)
        if ref is not None and ref[0] in byte_identical_types:
            assert name in identical, name
    print(f"\ninterop: {len(before)} files, {len(identical)} byte-identical, "
          f"{len(before) - len(identical)} identical up to JSON key order")

    dave = root / "dave"
    verify = baileys_node.run_script(
        _script(baileys_node, "verify.mjs"), str(original), str(exported), str(root / "bob"),
        str(root / "carol"), str(dave), input=json.dumps(held), timeout=180)
    report = json.loads(verify.stdout)
    assert report["mismatches"] == []
    assert report["compared"] == 1 + sum(len(ids) for ids in held["keys"].values())
    assert report["functional"] and all(v is True for v in report["functional"].values()), \
        report["functional"]
    print(f"interop: {report['compared']} values deep-equal; exported state used for real: "
          + ", ".join(report["functional"]))


def test_the_comparison_catches_a_changed_key(baileys_node, generated, tmp_path: Path) -> None:
    """Negative control: the verify script must notice when a value differs."""
    root, held = generated
    tampered = tmp_path / "tampered"
    shutil.copytree(root / "alice", tampered)
    pre_key = sorted(tampered.glob("pre-key-*.json"))[0]
    value = json.loads(pre_key.read_text())
    value["public"]["data"] = "A" * 43 + "="
    pre_key.write_text(json.dumps(value, separators=(",", ":")))
    verify = baileys_node.run_script(
        _script(baileys_node, "verify.mjs"), str(root / "alice"), str(tampered),
        str(root / "bob"), str(root / "carol"), str(tmp_path / "dave"),
        input=json.dumps(held), timeout=180)
    mismatches = json.loads(verify.stdout)["mismatches"]
    assert mismatches == [f"pre-key {pre_key.name[8:-5]}: differs from what Baileys held",
                          f"pre-key {pre_key.name[8:-5]}: not deep-equal to Baileys' own folder"]

"""Baileys `useMultiFileAuthState` folders <-> PostgreSQL: emergency rollback and migration.

    await export_company(store, "acme", "/srv/rollback/acme")   # creds.json + <type>-<id>.json
    await import_folder(store, "acme", "/srv/baileys/acme", dry_run=True)

See `names` for the file-name rule (and its ambiguity), `exporter` and `importer` for guarantees.
"""

from harness.authstate.multifile.errors import BadFolder, ExportRefused
from harness.authstate.multifile.exporter import ExportResult, export_company
from harness.authstate.multifile.importer import ImportResult, import_folder
from harness.authstate.multifile.names import (
    CREDS_FILE,
    MANIFEST_NAME,
    fix_file_name,
    key_file_name,
    parse_file_name,
)

__all__ = [
    "CREDS_FILE",
    "MANIFEST_NAME",
    "BadFolder",
    "ExportRefused",
    "ExportResult",
    "ImportResult",
    "export_company",
    "fix_file_name",
    "import_folder",
    "key_file_name",
    "parse_file_name",
]

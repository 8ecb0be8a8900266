"""authstate-harness: prove a PostgreSQL-backed Baileys auth-state store survives production."""

# The one place the version is written: pyproject.toml reads it (`dynamic = ["version"]`), so
# the wheel's metadata, `--version` and report.json agree, installed or run from a clone.
__version__ = "0.1.0"

__all__ = ["__version__"]

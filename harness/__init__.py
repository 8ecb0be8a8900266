"""authstate-harness: prove a PostgreSQL-backed Baileys auth-state store survives production."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("authstate-harness")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]

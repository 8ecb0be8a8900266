"""`python -m harness ...`: works from a fresh clone, setting up `.venv` on first use."""

from harness._bootstrap import ensure_environment

ensure_environment()

from harness.cli import main  # noqa: E402  (must follow the bootstrap, which may re-exec)

raise SystemExit(main())

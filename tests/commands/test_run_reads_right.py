"""What `run` says when it could not do its job: an error report that states only what is true
(no "All 1 check passed" for a run that never reached PostgreSQL)."""

from __future__ import annotations

import html
import io
import json
import re
import socket
from pathlib import Path

import pytest
from rich.console import Console

from harness.config import profile
from harness.errors import ProvisioningError
from harness.report.html import render_html
from harness.runner.job import MainJob, RunOptions
from harness.runner.suites import select_suites


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _job(tmp_path: Path, suites: list[str], **options: object) -> MainJob:
    opts = RunOptions(profile=profile("quick"), suites=select_suites(suites),
                      out_dir=tmp_path / "run", live=False, argv=["authstate-harness", "run"],
                      **options)  # type: ignore[arg-type]
    return MainJob(opts, Console(file=io.StringIO()))


def test_a_run_that_never_reached_postgres_claims_no_check_and_no_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHSTATE_DSN", raising=False)
    job = _job(tmp_path, ["property"], dsn=f"postgresql://app@127.0.0.1:{_closed_port()}/x")
    with pytest.raises(ProvisioningError):
        job.run()
    out = tmp_path / "run"
    md = (out / "report.md").read_text()
    report = json.loads((out / "report.json").read_text())
    page = html.unescape(re.sub(r"<[^>]+>", " ", render_html(report).split("</style>")[1]))
    assert report["run"]["status"] == "error" and report["run"]["exit_code"] == 2
    assert report["results"]["checks"] == [] and report["suites"] == []
    for text in (md, page):
        assert "passed" not in text.split("Harness error")[0].lower(), text[:600]
        assert "suite property" not in text and "None (None)" not in text
        assert "not a verdict on the store" in text and "No suite ran." in text
        assert "not reached (the run stopped before PostgreSQL was ready)" in text

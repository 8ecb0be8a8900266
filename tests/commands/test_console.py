"""CLI output in logs: tables keep one line per row instead of folding at 80 columns."""

from __future__ import annotations

from rich.table import Table

from harness.commands._console import LOG_WIDTH, make_console


def _wide_table() -> Table:
    table = Table()
    for name in ("scenario", "target", "MTTD p50/p95/max", "RTO p50/p95/max", "verdict"):
        table.add_column(name)
    table.add_row("connection-exhaustion", "resilient", "0.01 / 0.04 / 0.09 s",
                  "0.55 / 0.81 / 0.97 s", "passed (no anomalies)")
    return table


def test_output_that_is_not_a_terminal_gets_log_width(capsys, monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console()
    assert not console.is_terminal and console.width == LOG_WIDTH
    console.print(_wide_table())
    row = [line for line in capsys.readouterr().out.splitlines() if "connection-exhaustion" in line]
    assert len(row) == 1 and "passed (no anomalies)" in row[0]


def test_columns_from_the_environment_win(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert make_console().width == 100

"""Gates: defaults < pyproject table < --gate; typos and nonsense are errors, never ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import KNOWN_GATES, load_config, parse_gate_override, profile
from harness.errors import ConfigError


def _pyproject(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(f"[project]\nname = 'x'\n\n[tool.authstate-harness]\n{table}\n")
    return path


def test_defaults_apply_without_a_pyproject(tmp_path: Path) -> None:
    config = load_config(tmp_path / "missing.toml")
    assert dict(config.gates) == {n: g.default for n, g in KNOWN_GATES.items()}
    assert set(config.sources.values()) == {"default"}


def test_the_repository_pyproject_sets_every_gate() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "pyproject.toml")
    assert set(config.sources.values()) == {"pyproject.toml"}


def test_pyproject_then_command_line_override(tmp_path: Path) -> None:
    path = _pyproject(tmp_path, "bench-bulk-min-ratio = 0.9\nproxy-p50-max-ratio = 2")
    config = load_config(path, ["proxy-p50-max-ratio=1.5"])
    assert config.gate("bench-bulk-min-ratio") == 0.9
    assert config.gate("proxy-p50-max-ratio") == 1.5
    assert config.sources["proxy-p50-max-ratio"] == "--gate"
    described = {d["name"]: d for d in config.describe()}
    assert described["bench-bulk-min-ratio"]["op"] == ">="
    assert described["bench-bulk-min-ratio"]["source"] == "pyproject.toml"


@pytest.mark.parametrize("table, message", [
    ("bench-bulk-min-ratoi = 0.8", "unknown gate 'bench-bulk-min-ratoi'"),
    ("bench-bulk-min-ratio = 'fast'", "not a positive number"),
    ("bench-bulk-min-ratio = true", "not a positive number"),
    ("bench-bulk-min-ratio = -1", "not a positive number"),
    ("bench-bulk-min-ratio = nan", "not a positive number"),
    ("bench-bulk-min-ratio = [", "not valid TOML"),
])
def test_bad_tables_are_refused_with_a_hint(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_config(_pyproject(tmp_path, table))
    assert err.value.hint


@pytest.mark.parametrize("text", ["bench-bulk-min-ratio", "nope=1", "proxy-p50-max-ratio=x",
                                  "proxy-p50-max-ratio=0"])
def test_bad_overrides_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_gate_override(text)


def test_unknown_profile_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown profile") as err:
        profile("fast")
    assert "quick" in (err.value.hint or "")
    assert profile("ci").hypothesis_profile == "ci"


def test_zero_is_accepted_only_by_max_count_gates(tmp_path: Path) -> None:
    config = load_config(_pyproject(tmp_path, "chaos-lost-writes-max = 0"),
                         ["chaos-lost-writes-max=0"])
    assert config.gate("chaos-lost-writes-max") == 0
    for text in ("chaos-rto-p95-max-s=0", "resilient-bulk-min-ratio=0"):
        with pytest.raises(ConfigError, match="not a positive number") as err:
            parse_gate_override(text)
        assert "write e.g." in (err.value.hint or "")
    with pytest.raises(ConfigError, match="not a number >= 0") as err:
        parse_gate_override("chaos-lost-writes-max=-1")
    assert err.value.hint == "write e.g. chaos-lost-writes-max = 0"


def test_every_gate_names_the_suite_that_measures_it() -> None:
    assert {g.suite for g in KNOWN_GATES.values()} == {"bench", "chaos", "load", "signal"}
    assert KNOWN_GATES["chaos-rto-p95-max-s"].op == "<="
    assert KNOWN_GATES["journal-replay-min-ratio"].op == ">="


def test_how_gates_are_judged_is_read_from_the_same_table_and_overridable(
        tmp_path: Path) -> None:
    path = _pyproject(tmp_path, 'undecided = "fail"\nmore-bench-rounds = 1.5\n'
                                "more-chaos-repetitions = 3")
    config = load_config(path)
    assert (config.judging.undecided, config.judging.more_bench_rounds,
            config.judging.more_chaos_repetitions) == ("fail", 1.5, 3)
    assert config.judging.sources["undecided"] == path.name
    assert load_config(path, undecided="warn").judging.undecided == "warn"
    cli = load_config(path, ["more-chaos-repetitions=0", "more-bench-rounds=0"]).judging
    assert (cli.more_chaos_repetitions, cli.more_bench_rounds) == (0, 0.0)
    assert cli.sources["more_chaos_repetitions"] == "--gate"
    default = load_config(tmp_path / "missing.toml").judging
    assert (default.undecided, default.more_bench_rounds, default.more_chaos_repetitions) == (
        "warn", 2.0, 2)


@pytest.mark.parametrize(("line", "message"), [
    ('undecided = "maybe"', "is not one of warn, fail"),
    ("more-chaos-repetitions = 1.5", "is not a whole number"),
    ("more-bench-rounds = -1", "is not a number >= 0"),
])
def test_bad_judging_settings_are_refused_with_a_hint(tmp_path: Path, line: str,
                                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_config(_pyproject(tmp_path, line))
    assert err.value.hint

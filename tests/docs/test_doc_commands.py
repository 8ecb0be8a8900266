"""Every command the README and docs/ show is one the harness accepts, and the cheap ones run.

What counts as a command, and how each kind of block is read: tests/docs/doc_commands.py. Every
harness command is parsed by the CLI's own parser (`harness.cli.parse_argv`), so a misspelt
option, a wrong sub-command or a choice that does not exist fails here; its chaos scenarios,
gates, target and repository paths are checked against what exists. Commands that cost
nothing are run for real: `--help` / `--version`, `report` and `compare` on the report
fixtures of tests/report_html/data, `proxy serve` (started, asked, stopped) and the catalogue
listing. Other programs (curl, pip, npm, locust ...) are skipped by name.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from doc_commands import (  # type: ignore[import-not-found]
    HARNESS_MODULE,
    HARNESS_SCRIPTS,
    INLINE,
    OTHER_PROGRAMS,
    PYTHONS,
    REPO,
    Command,
    doc_files,
    find_all,
    prose_lines,
    rel,
)

from harness.chaos.catalog import SCENARIOS
from harness.cli import build_parser, main, parse_argv
from harness.commands.run import check_profile_suites
from harness.config import load_config, profile
from harness.targets import BUILTIN_TARGETS, resolve_target

FOUND = find_all()
HARNESS = [c for c in FOUND.commands if c.program == "harness"]
REPORTS = REPO / "tests" / "report_html" / "data"
REPO_DIRS = ("tests", "examples", "scenarios", "harness", "fixtures", "docs")
# Repository scripts the docs show that are quick and side-effect free: run them.
SCRIPTS_TO_RUN = {("tests/chaos/catalogue.py", "--list"): "| mistake | target | scenario |"}


def _id(command: Command) -> str:
    return f"{command.where} {command.text[:60]}"


def _runs_cheaply(command: Command) -> bool:
    argv = command.argv
    return bool({"-h", "--help", "--version"} & set(argv)) or argv[:1] in (("report",),
                                                                             ("compare",))


def test_the_docs_show_harness_commands_and_nothing_unknown() -> None:
    """Every simple command is the harness or a program skipped by name; none hides in a block
    of another language."""
    unknown = [f"{c.where}: {c.program!r} in {c.text!r}" for c in FOUND.commands
               if c.program not in ("harness", HARNESS_MODULE, *OTHER_PROGRAMS)]
    assert not unknown, "programs neither harness nor on OTHER_PROGRAMS:\n" + "\n".join(unknown)
    assert not FOUND.misplaced, ("commands in blocks nobody checks (put command lines in ```sh "
                                 "and synopses in ```text):\n" + "\n".join(FOUND.misplaced))
    assert len(HARNESS) >= 20 and len(FOUND.synopses) >= 10, "the extractor found too little"
    assert {"README.md"} <= {c.where.split(":")[0] for c in HARNESS}


METAVAR = re.compile(r"^[A-Z][A-Z0-9_]*$")  # `--seed N`, `--out DIR`: a placeholder value


def _parse(command: Command) -> object | None:
    """The namespace, or None for --help / --version (which print and exit 0). A placeholder
    value after an option (`--seed N`) stands for a valid one."""
    argv = [("1" if METAVAR.match(w) and i and command.argv[i - 1].startswith("--") else w)
            for i, w in enumerate(command.argv)]
    try:
        return parse_argv(argv)
    except SystemExit as exc:
        assert exc.code == 0, f"{command.where}: the parser refuses {command.text!r}"
        return None


def _repo_paths(value: str) -> list[str]:
    """Paths into the repository a word names (`node:examples/x.js#y`, `tests/a.py:open`)."""
    word = value.removeprefix("node:").split("#", 1)[0]
    if ".py:" in word:
        word = word.split(".py:", 1)[0] + ".py"
    return [word] if word.split("/", 1)[0] in REPO_DIRS and "/" in word else []


@pytest.mark.parametrize("command", HARNESS, ids=[_id(c) for c in HARNESS])
def test_harness_command_is_accepted(command: Command) -> None:
    args = _parse(command)
    if args is None:
        return
    options = vars(args)
    for name in options.get("scenario") or ():
        assert name in SCENARIOS, f"{command.where}: no chaos scenario {name!r}"
    # a gate (or judging setting) that does not exist, or a bad value, raises
    load_config(REPO / "pyproject.toml", options.get("gate") or (),
                undecided=options.get("undecided"))
    if options.get("command") == "run":
        check_profile_suites(profile(options["profile"]), options.get("suite"))
    for word in command.argv:
        for path in _repo_paths(word):
            assert (REPO / path).exists(), f"{command.where}: {path} does not exist"
    target = options.get("target")
    if target and (target in BUILTIN_TARGETS or (target.split(":", 1)[0].endswith(".py")
                                                  and _repo_paths(target))):
        resolve_target(target)  # a missing factory or a broken file raises


OPTION_SPANS = [(f"{rel(page)}:{n}", span) for page in doc_files()
                for n, line in prose_lines(page) for span in INLINE.findall(line)
                if re.match(r"^--(gate|scenario) \S+$", span)]


@pytest.mark.parametrize(("where", "span"), OPTION_SPANS, ids=[f"{w} {s}" for w, s in OPTION_SPANS])
def test_gate_and_scenario_named_in_prose_exist(where: str, span: str) -> None:
    """`--gate more-chaos-repetitions=4`, `--scenario sever` quoted in a sentence."""
    option, value = span.split(" ", 1)
    if re.match(r"^[A-Z_]+(=[A-Z_]+)?$", value):  # `--gate NAME=VALUE`: the form, not a gate
        return
    if option == "--gate":
        load_config(REPO / "pyproject.toml", [value])
    else:
        assert value in SCENARIOS, f"{where}: no chaos scenario {value!r}"


MODULES = [c for c in FOUND.commands if c.program == HARNESS_MODULE]


@pytest.mark.parametrize("command", MODULES, ids=[_id(c) for c in MODULES])
def test_harness_module_shown_exists(command: Command) -> None:
    """`python -m harness.faults.disk ...`: the module is one of the harness's."""
    name = command.argv[0]
    assert importlib.util.find_spec(name) is not None, f"{command.where}: no module {name}"


def _command_parser(words: list[str]) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in words:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or word.startswith(("-", "[")) or word.isupper():
            break
        assert word in actions[0].choices, f"no command {word!r}"
        parser = actions[0].choices[word]
    return parser


def _synopsis_options(text: str) -> list[tuple[str, list[str]]]:
    """(option, the choices it lists) for each `--option` of a synopsis (not inside quotes:
    `--pytest-args '-k x'` is one option)."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "''", text)
    return [(m[1], m[2].split("|") if m[2] else [])
            for m in re.finditer(r"(--[a-z][\w-]*)(?:[ =]([a-z][\w-]*(?:\|[\w-]+)+))?", text)]


@pytest.mark.parametrize(("where", "text"), FOUND.synopses, ids=[w for w, _ in FOUND.synopses])
def test_synopsis_names_real_options(where: str, text: str) -> None:
    words = text.split()
    start = 1 if words[0] in HARNESS_SCRIPTS else 3 if words[0] in PYTHONS else 0
    parser = _command_parser(words[start:])
    if parser.prog.split()[1:2] == ["test"]:
        return  # its options are pytest's (harness.cli.PASSTHROUGH_COMMANDS)
    actions = {o: a for a in parser._actions for o in a.option_strings}
    for option, choices in _synopsis_options(text):
        assert option in actions, f"{where}: {parser.prog} has no {option}"
        known = actions[option].choices
        if choices and known is not None:
            assert set(choices) <= set(known), f"{where}: {option} offers {sorted(known)}"


# -- running the cheap ones ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def report_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reports folder with two run folders holding the same real quick run's report.json."""
    root = tmp_path_factory.mktemp("reports")
    data = gzip.decompress((REPORTS / "quick-report.json.gz").read_bytes())
    for stamp in ("20261201T192014Z", "20261201T222716Z"):
        (root / stamp).mkdir()
        (root / stamp / "report.json").write_bytes(data)
    return root


def _with_fixtures(argv: tuple[str, ...], reports: Path, scratch: Path) -> list[str]:
    """`report DIR` / `compare OLD NEW` with the doc's paths replaced by report fixtures."""
    out, runs = list(argv), sorted(p for p in reports.iterdir() if p.is_dir())
    positional = [i for i, w in enumerate(out[1:], 1) if not w.startswith("-")]
    if out[0] == "report":
        (i,) = positional
        if Path(out[i].rstrip("/")).name in ("reports", "runs"):
            out[i] = str(reports)
        else:
            out[i] = str(shutil.copytree(runs[0], scratch / "run"))
    elif out[0] == "compare":
        for i, run in zip(positional, runs, strict=True):
            out[i] = str(run)
    return out


CHEAP = [c for c in HARNESS if _runs_cheaply(c)]


@pytest.mark.parametrize("command", CHEAP, ids=[_id(c) for c in CHEAP])
def test_cheap_harness_command_runs(command: Command, report_folders: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    argv = _with_fixtures(command.argv, report_folders, tmp_path) if command.argv[:1] in (
        ("report",), ("compare",)) else list(command.argv)
    try:
        code = main(argv)
    except SystemExit as exc:  # --help, --version
        code = exc.code
    said = capsys.readouterr()
    assert code == 0, f"{command.where}: {argv} exited {code}: {said.err[-2000:]}"
    assert said.out.strip(), f"{command.where}: {argv} printed nothing"


def _launchers() -> list[tuple[str, ...]]:
    return sorted({c.launcher for c in HARNESS if c.launcher[0] in HARNESS_SCRIPTS | PYTHONS})


@pytest.mark.parametrize("launcher", _launchers(), ids=" ".join)
def test_each_launcher_the_docs_use_starts_the_harness(launcher: tuple[str, ...]) -> None:
    """`python3 -m harness`, `authstate-harness`, `.venv/bin/authstate-harness`: real processes."""
    bin_dir = Path(sys.executable).parent
    argv = ([sys.executable, *launcher[1:]] if launcher[0] in PYTHONS
            else [str(bin_dir / Path(launcher[0]).name)])
    if not Path(argv[0]).exists():
        pytest.skip(f"{argv[0]} is not installed in this environment (pip install -e .)")
    done = subprocess.run([*argv, "--version"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("authstate-harness "), done.stdout


PROXY = [c for c in HARNESS if c.argv[:2] == ("proxy", "serve") and not _runs_cheaply(c)]


@pytest.mark.parametrize("command", PROXY, ids=[_id(c) for c in PROXY])
def test_proxy_serve_as_shown_answers_and_stops(command: Command) -> None:
    """Started as the doc shows it (on a free port instead of 8474), asked its version, stopped
    with SIGTERM: exit 0."""
    argv = list(command.argv)
    if "--port" in argv:
        argv[argv.index("--port") + 1] = "0"
    else:
        argv += ["--port", "0"]
    proc = subprocess.Popen([sys.executable, "-m", "harness", *argv], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url, deadline = None, time.monotonic() + 30
        assert proc.stdout is not None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "(http://" in line:
                url = line.split("(http://", 1)[1].split(";", 1)[0].split(")", 1)[0]
        assert url, "the proxy never said where it listens"
        with urllib.request.urlopen(f"http://{url}/version", timeout=10) as answer:
            assert answer.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


SCRIPTS = [(c, key) for c in FOUND.commands for key in SCRIPTS_TO_RUN
           if c.program in PYTHONS and tuple(c.text.split()[1:3]) == key]


@pytest.mark.parametrize(("command", "script"), SCRIPTS, ids=[_id(c) for c, _ in SCRIPTS])
def test_repository_script_as_shown_runs(command: Command, script: tuple[str, ...]) -> None:
    done = subprocess.run([sys.executable, *script], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert SCRIPTS_TO_RUN[script] in done.stdout


CATALOGUE_ROW = re.compile(r"\|\s*`([^`]+)`\s*\|\s*([a-z-]+)\s*\|\s*`([^`]+)`\s*\|")


def test_the_readme_catalogue_lists_what_the_catalogue_holds() -> None:
    """The README's catalogue table has a row (target, scenario, anomaly) for each entry of
    `tests/chaos/catalogue.py --list`, whether the lead's generated table or its placeholder."""
    listed = subprocess.run([sys.executable, "tests/chaos/catalogue.py", "--list"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    entries = CATALOGUE_ROW.findall(listed)
    assert len(entries) >= 10, listed
    missing = [e for e in entries if e not in CATALOGUE_ROW.findall(readme)]
    assert not missing, f"README's catalogue table lacks {missing}"

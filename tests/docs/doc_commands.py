"""Find the commands the documentation shows: README.md and docs/*.md.

Fenced blocks are read by their language:

- ``sh`` / ``bash`` / ``shell`` / ``console``: every line is a shell command line (``\\``
  continuations joined, ``#`` comments dropped, split at ``;``, ``&&``, ``||``, ``|``, ``&``);
- ``yaml`` / ``yml``: the commands of CI steps (``run:`` values, ``run: |`` bodies and the items
  of ``script:`` / ``before_script:`` / ``after_script:``), read as shell command lines;
- ``text`` (or no language): a line that starts with a harness launcher is a *synopsis*
  (``authstate-harness load [--profile ...]``): its options are checked against the parser;
- any other language (python, js, toml, json, sql): a harness command there is an error, so a
  command can never hide in a block nobody checks.

Inline code spans that start with a harness launcher are command lines too. Every simple command
is either a harness invocation (``python3 -m harness``, ``authstate-harness``,
``.venv/bin/authstate-harness``, ``pipx run ... authstate-harness``, ``uvx ... authstate-harness``)
or a program on `OTHER_PROGRAMS`, skipped by name; anything else is reported.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL_LANGS = frozenset({"sh", "bash", "shell", "console"})
YAML_LANGS = frozenset({"yaml", "yml"})
SYNOPSIS_LANGS = frozenset({"text", ""})

# Programs the documentation may show beside the harness. They are not run or parsed here:
# each is skipped by name, so an unknown program (or a misspelt launcher) fails the test.
OTHER_PROGRAMS = frozenset({
    "curl", "psql", "pip", "pip3", "pipx", "uv", "uvx", "npm", "npx", "node", "locust",
    ".venv/bin/locust", "pytest", ".venv/bin/pytest", "tox", "git", "cat", "rm", "cp", "mv",
    "mkdir", "cd", "export", "echo", "test", "[", "kill", "sleep", "wait", "true", ".", "source",
    "python", "python3", ".venv/bin/python", "apt-get", "docker", "fusermount3",
})
# Shell words that start or join commands, dropped before the program is looked at.
SHELL_KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "!", "time"})
SHELL_ENDS = frozenset({"fi", "done"})
# Words that start a command line but name no program the docs may show: `harness run ...`.
COMMAND_LOOKALIKES = frozenset({"harness", "$"})
PYTHONS = frozenset({"python", "python3", ".venv/bin/python", ".venv/bin/python3"})
HARNESS_SCRIPTS = frozenset({"authstate-harness", ".venv/bin/authstate-harness"})
HARNESS_MODULE = "harness module"  # Command.program of `python -m harness.x ...`
OPERATORS = frozenset({";", "&&", "||", "|", "&", "(", ")"})
REDIRECTS = frozenset({">", ">>", "<", ">&", "<&"})
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SHELL_VARIABLE = re.compile(r"^\$\{?[a-z_][a-z0-9_]*\}?$")  # `$args`: optional arguments
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
PLACEHOLDER = re.compile(r"<([A-Za-z][^<>]*)>")  # `reports/<UTC timestamp>/`
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


@dataclass(frozen=True)
class Command:
    """One simple command as the documentation shows it."""

    where: str  # "docs/cli.md:42"
    kind: str  # "shell" | "yaml" | "inline" | "synopsis"
    text: str  # the command line as written (continuations joined)
    program: str  # "harness" or the other program's name
    argv: tuple[str, ...] = ()  # the harness's arguments (after the launcher)
    launcher: tuple[str, ...] = field(default=())  # how the harness was invoked


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    lines: tuple[str, ...]


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def blocks(path: Path) -> Iterator[Block]:
    """Fenced code blocks, also inside list items (indented fences)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        fence, indent = opened["fence"], len(opened["indent"])
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.match(rf"^\s*{re.escape(fence)}\s*$", lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        yield Block(path, i + 1, opened["lang"].lower(), tuple(body))
        i = j + 1


def prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Lines outside fenced blocks, numbered from 1."""
    inside: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        opened = FENCE.match(line)
        if inside is None and opened:
            inside = opened["fence"]
        elif inside is not None and re.match(rf"^\s*{re.escape(inside)}\s*$", line):
            inside = None
        elif inside is None:
            yield number, line


def logical_lines(lines: tuple[str, ...] | list[str]) -> Iterator[tuple[int, str]]:
    """(offset of the first physical line, the line with `\\` continuations joined)."""
    pending, start = "", 0
    for offset, line in enumerate(lines):
        if not pending:
            start = offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def strip_comment(line: str) -> str:
    """The line before its shell comment: a `#` outside quotes that starts a word (so
    `node:store.js#export` keeps its `#`)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def split_commands(line: str) -> list[list[str]]:
    """A shell line as simple commands (words), comments and redirections dropped. A
    `<placeholder>` is a word, not a redirection."""
    line = PLACEHOLDER.sub(lambda m: "_" + re.sub(r"\W+", "_", m[1]) + "_", strip_comment(line))
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    commands: list[list[str]] = [[]]
    words = list(lexer)
    i = 0
    while i < len(words):
        word = words[i]
        if word in OPERATORS or set(word) <= set(";&|()"):
            commands.append([])
        elif word in REDIRECTS or set(word) <= set("<>&"):
            if commands[-1] and commands[-1][-1].isdigit():  # `2>/dev/null`
                commands[-1].pop()
            i += 1  # the redirection's target
        else:
            commands[-1].append(word)
        i += 1
    return [c for c in commands if c]


def harness_argv(words: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(launcher, arguments) when `words` invoke the harness, else None."""
    if not words:
        return None
    if words[0] in HARNESS_SCRIPTS:
        return (words[0],), tuple(words[1:])
    if words[0] in PYTHONS and words[1:3] == ["-m", "harness"]:
        return tuple(words[:3]), tuple(words[3:])
    # pipx run [--spec X] authstate-harness ..., uvx [--from X] authstate-harness ...,
    # uv tool run [--from X] authstate-harness ...
    for prefix in (["pipx", "run"], ["uvx"], ["uv", "tool", "run"]):
        if words[:len(prefix)] == prefix:
            rest = words[len(prefix):]
            while rest and rest[0].startswith("-"):
                rest = rest[2:] if "=" not in rest[0] else rest[1:]
            if rest and rest[0] == "authstate-harness":
                return tuple(words[:len(words) - len(rest) + 1]), tuple(rest[1:])
    return None


def classify(where: str, kind: str, text: str, words: list[str]) -> Command:
    """One simple command: environment assignments and shell keywords dropped."""
    while words and (ASSIGNMENT.match(words[0]) or words[0] in SHELL_KEYWORDS):
        words = words[1:]
    words = [w for w in words if not SHELL_VARIABLE.match(w)]
    if "..." in words:  # "and so on": the rest is not shown
        words = words[:words.index("...")]
    found = harness_argv(words)
    if found is not None:
        launcher, argv = found
        return Command(where, kind, text, "harness", argv, launcher)
    module = harness_module(words)
    if module is not None:
        return Command(where, kind, text, HARNESS_MODULE, tuple(words[2:]), tuple(words[:2]))
    return Command(where, kind, text, words[0] if words else "")


def harness_module(words: list[str]) -> str | None:
    """`python -m harness.faults.disk ...`: a module of the harness run as a program."""
    if len(words) >= 3 and words[0] in PYTHONS and words[1] == "-m" and \
            words[2].startswith("harness."):
        return words[2]
    return None


def shell_commands(where: str, kind: str, line: str) -> Iterator[Command]:
    for words in split_commands(line):
        command = classify(where, kind, line.strip(), words)
        if command.program and command.program not in SHELL_ENDS:  # not a bare `x=1` or `fi`
            yield command


def yaml_command_lines(lines: tuple[str, ...]) -> Iterator[tuple[int, str]]:
    """The shell lines of CI steps: `run:` values and bodies, `script:` list items."""
    script_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        run = re.match(r"^(\s*)(?:-\s+)?run:\s*(.*?)\s*$", line)
        script = re.match(r"^(\s*)(?:before_|after_)?script:\s*$", line)
        if run:
            script_indent = None
            if run[2] in ("|", "|-", ">", ">-"):
                j = i + 1
                while j < len(lines) and (not lines[j].strip() or
                                          len(lines[j]) - len(lines[j].lstrip()) > len(run[1])):
                    if lines[j].strip():
                        yield j, lines[j].strip()
                    j += 1
                i = j
                continue
            yield i, run[2]
        elif script:
            script_indent = len(script[1])
        elif script_indent is not None:
            item = re.match(r"^(\s*)-\s+(.*)$", line)
            if item and len(item[1]) >= script_indent:
                yield i, item[2]
            elif line.strip() and len(line) - len(line.lstrip()) <= script_indent:
                script_indent = None
        i += 1


def synopsis_groups(lines: tuple[str, ...]) -> Iterator[tuple[int, list[str], str]]:
    """(offset, launcher+command words, the synopsis text with its continuation lines)."""
    current: tuple[int, list[str], list[str]] | None = None
    for offset, line in enumerate(lines):
        words = line.split()
        starts = bool(words) and (words[0] in HARNESS_SCRIPTS or
                                  (words[0] in PYTHONS and words[1:3] == ["-m", "harness"]))
        if starts:
            if current:
                yield current[0], current[1], " ".join(current[2])
            current = (offset, words, [line])
        elif current and line.startswith((" ", "\t")) and line.strip():
            current[2].append(line)
        elif current:
            yield current[0], current[1], " ".join(current[2])
            current = None
    if current:
        yield current[0], current[1], " ".join(current[2])


def is_synopsis(text: str) -> bool:
    """`authstate-harness load [--profile P] [--seed N]`: optional parts or metavariables. A
    line without them is a command as it would be typed."""
    words = PLACEHOLDER.sub("X", strip_comment(text)).split()
    return "[" in text or any(re.fullmatch(r"[A-Z][A-Z0-9_.=/-]*|\.\.\.", w) for w in words[1:])


@dataclass
class Found:
    commands: list[Command] = field(default_factory=list)
    synopses: list[tuple[str, str]] = field(default_factory=list)  # (where, text)
    misplaced: list[str] = field(default_factory=list)  # harness commands in unchecked blocks


def find_all() -> Found:
    found = Found()
    for path in doc_files():
        name = rel(path)
        for block in blocks(path):
            at = f"{name}:{block.line}"
            if block.lang in SHELL_LANGS:
                for offset, line in logical_lines(block.lines):
                    text = line[2:] if block.lang == "console" and line.startswith("$ ") else line
                    found.commands += shell_commands(f"{name}:{block.line + 1 + offset}",
                                                     "shell", text)
            elif block.lang in YAML_LANGS:
                for offset, line in yaml_command_lines(block.lines):
                    found.commands += shell_commands(f"{name}:{block.line + 1 + offset}",
                                                     "yaml", line)
            elif block.lang in SYNOPSIS_LANGS:
                for offset, line in enumerate(block.lines):
                    words = line.split()
                    checked = harness_argv(words) is not None or harness_module(words)
                    if words and not checked and (words[0] in COMMAND_LOOKALIKES or
                                                  words[0] in OTHER_PROGRAMS):
                        found.misplaced.append(f"{at}+{offset + 1} ({block.lang or 'no language'}"
                                               f"): {line.strip()}")
                for offset, _words, text in synopsis_groups(block.lines):
                    at_line = f"{name}:{block.line + 1 + offset}"
                    if is_synopsis(text):
                        found.synopses.append((at_line, text))
                    else:  # a plain command line in a text block: checked as one
                        found.commands += shell_commands(at_line, "text", text)
                for offset, line in enumerate(block.lines):
                    if harness_module(line.split()) is not None:  # `a | b`: alternatives
                        found.commands.append(classify(f"{name}:{block.line + 1 + offset}",
                                                       "synopsis", line.strip(), line.split()))
            else:
                for offset, line in enumerate(block.lines):
                    stripped = re.sub(r"^\s*(?:#|//|--|\$)?\s*", "", line)
                    if harness_argv(stripped.split()) is not None or \
                            harness_module(stripped.split()):
                        found.misplaced.append(f"{at}+{offset + 1} ({block.lang}): {line.strip()}")
        for number, line in prose_lines(path):
            for span in INLINE.findall(line):
                words = span.split()
                start = next((i for i, w in enumerate(words) if not ASSIGNMENT.match(w)), 0)
                if harness_argv(words[start:]) is not None or harness_module(words[start:]):
                    found.commands += shell_commands(f"{name}:{number}", "inline", span)
    return found

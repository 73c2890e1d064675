"""The docs name only things that exist: settings, commands and their flags, make targets, files, modules.

A doc that names a renamed setting, a dropped flag or a moved file reads fine and misleads; these checks
make such a change fail here instead (issue 19, item 6). They read README.md, docs/*.md and the fixture
and web READMEs; what they cannot check (behaviour, numbers) is left to review.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from cityscreen.aggregate.late import LATE
from cityscreen.ingest import REASONS as INGEST_REASONS
from services.cli import app
from services.stack.env_example import variables
from streams.aggregate_agent import UNDECODABLE

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [
    README,
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "fixtures" / "README.md",
    ROOT / "web" / "README.md",
]

# `CITY_*` variables the docs may name that are not settings: knobs a test reads, in the file given.
TEST_KNOBS = {
    "CITY_TEST_SEED": "tests/unit/test_attack.py",
    "CITY_ATTACK_ALL_WINDOWS": "tests/unit/test_attack_fixture.py",
}
# A name followed by `__*` (a settings group) is a prefix, not a variable.
CITY_NAME = re.compile(r"\bCITY_[A-Z0-9]+(?:_{1,2}[A-Z0-9]+)*(?P<group>__\*)?")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
# A command starts a code span or a shell line: after `$ `, `$(`, `&&`, `;`, env assignments, a venv path.
COMMAND = re.compile(
    r"(?:^|\$\(|&&|;)\s*(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\.venv/bin/)?cityscreen(?=\s|$)"
    r"(?P<args>[^|;)#\"\n]*)"
)
MAKE = re.compile(r"(?:^|&&|;)\s*make\s+(?P<target>[\w.-]+)")
MAKE_TARGET = re.compile(r"^(?P<target>[\w.-]+):(?!=)", re.MULTILINE)
# Paths are checked when they start in a source directory; others (`.data/`, `artifacts/`) are outputs.
PATH = re.compile(r"^[\w.-]+(?:/[\w.-]+)+/?$")
SOURCE_DIRS = {"cityscreen", "adapters", "streams", "services", "tests", "web", "deploy", "fixtures", "docs"}
DOC_SOURCE_DIRS = {"web": {"src", "test"}}  # paths a doc in web/ writes relative to web/
BUILD_OUTPUTS = ("web/dist", "web/node_modules")  # inside source directories, but absent from a fresh clone
MODULE_REF = re.compile(r"^(?:cityscreen|adapters|streams|services|tests)(?:\.\w+)+(?:\(\))?$")
NOT_MODULES = {
    "cityscreen.v1": "the websocket subprotocol",
    "cityscreen.partials.v1": "the partials topic's former shared name, quoted as history",
}


def code_spans(text: str) -> Iterator[str]:
    """Inline code, then every line of fenced and indented blocks (a trailing backslash joins lines)."""
    text = text.replace("\\\n", " ")
    yield from INLINE_CODE.findall(text)
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    "):
            yield line.strip()


def doc_id(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


def cli_root() -> Any:
    """The command line as click commands (typer vendors its own click, so they are duck-typed here)."""
    return typer.main.get_command(app)


def subcommands(command: Any) -> dict[str, Any]:
    """A group's subcommands by name; empty for a leaf command."""
    return dict(getattr(command, "commands", {}))


def command_problems(args: str, root: Any) -> list[str]:
    """What is wrong with `cityscreen <args>`: an unknown subcommand or a flag the command lacks."""
    command, path = root, ["cityscreen"]
    words = args.split()
    while words and words[0] in subcommands(command):
        command = subcommands(command)[words[0]]
        path.append(words.pop(0))
    if subcommands(command) and words and not words[0].startswith("-"):
        return [f"`{' '.join(path)}` has no subcommand {words[0]!r}"]
    flags = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    flags.add("--help")
    named = [word.split("=")[0] for word in words if word.startswith("--")]
    return [f"`{' '.join(path)}` has no option {flag}" for flag in named if flag not in flags]


def invocations(doc: Path) -> Iterator[str]:
    """The arguments of every `cityscreen ...` command line the doc shows."""
    for span in code_spans(doc.read_text(encoding="utf-8")):
        for match in COMMAND.finditer(span):
            yield match.group("args")


def test_every_city_variable_named_in_the_docs_is_a_setting_or_a_test_knob() -> None:
    settings = {name for _, name, _, _ in variables()}
    groups = {name.split("__")[0] for name in settings if "__" in name}
    wrong = [
        f"{doc_id(doc)}: {m.group(0)}"
        for doc in DOCS
        for m in CITY_NAME.finditer(doc.read_text(encoding="utf-8"))
        if (m.group(0).removesuffix("__*") not in groups if m.group("group") else m.group(0) not in settings)
        and m.group(0) not in TEST_KNOBS
    ]
    assert wrong == [], "not a setting (cityscreen/settings.py, .env.example) nor a test knob"


def test_the_variable_pattern_reads_names_and_group_prefixes() -> None:
    found = [
        (m.group(0), m.group("group")) for m in CITY_NAME.finditer("`CITY_*`, CITY_PRIVACY__*, CITY_MODE=x")
    ]
    assert found == [("CITY_PRIVACY__*", "__*"), ("CITY_MODE", None)]


@pytest.mark.parametrize("name", sorted(TEST_KNOBS))
def test_each_test_knob_is_read_by_its_test(name: str) -> None:
    assert f'"{name}"' in (ROOT / TEST_KNOBS[name]).read_text(encoding="utf-8")


def test_every_cityscreen_command_in_the_docs_exists_with_its_options() -> None:
    root = cli_root()
    problems = [
        f"{doc_id(doc)}: {p}"
        for doc in DOCS
        for args in invocations(doc)
        for p in command_problems(args, root)
    ]
    assert problems == []


def test_the_command_check_reads_the_readme_and_catches_a_wrong_name() -> None:
    """The checks above would pass vacuously if the parsing found nothing, or forgave everything."""
    root = cli_root()
    shown = [args.split() for args in invocations(README)]
    assert len(shown) >= 5 and any(words[:1] == ["bench"] and len(words) > 2 for words in shown)
    assert command_problems(" bench soak --rate 1 --minutes 1", root) == []
    assert command_problems(" bench sook", root) == ["`cityscreen bench` has no subcommand 'sook'"]
    assert command_problems(" up --fast", root) == ["`cityscreen up` has no option --fast"]


def test_the_readme_lists_every_top_level_command() -> None:
    text = README.read_text(encoding="utf-8")
    listing = text[text.index("lists every command") : text.index("- All settings")]
    named = {span.split()[0] for span in INLINE_CODE.findall(listing) if not span.startswith("cityscreen")}
    assert named == set(subcommands(cli_root()))


def test_every_make_target_in_the_docs_exists() -> None:
    targets = set(MAKE_TARGET.findall((ROOT / "Makefile").read_text(encoding="utf-8")))
    wrong = [
        f"{doc_id(doc)}: make {m.group('target')}"
        for doc in DOCS
        for span in code_spans(doc.read_text(encoding="utf-8"))
        for m in MAKE.finditer(span)
        if m.group("target") not in targets
    ]
    assert wrong == []


def test_the_readme_sets_up_with_exactly_make_run_and_make_test() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Set up on a fresh machine")
    section = text[start : text.index("\n## ", start + 1)]
    blocks = re.findall(r"^```\n(.*?)\n```$", section, flags=re.MULTILINE | re.DOTALL)
    assert blocks == ["make run", "make test"]


def test_the_readme_names_every_dead_letter_reason_and_no_other() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("- Rejected input")
    bullet = text[start : text.index("\n- ", start)]
    named = {span for span in INLINE_CODE.findall(bullet) if re.fullmatch(r"[a-z_]+", span)}
    assert named == {*INGEST_REASONS, LATE, UNDECODABLE}


def checked_path(doc: Path, span: str) -> Path | None:
    """Where a path-like span should exist, or None when it is not a path into the sources."""
    if not PATH.match(span):
        return None
    first = span.split("/")[0]
    if span.startswith(BUILD_OUTPUTS):
        return None
    if first in SOURCE_DIRS:
        return ROOT / span
    if first in DOC_SOURCE_DIRS.get(doc.parent.name, set()) and doc.parent != ROOT:
        return doc.parent / span
    return None


def test_every_source_path_in_the_docs_exists() -> None:
    missing = [
        f"{doc_id(doc)}: {span}"
        for doc in DOCS
        for span in INLINE_CODE.findall(doc.read_text(encoding="utf-8"))
        if (path := checked_path(doc, span)) is not None and not path.exists()
    ]
    assert missing == []


def resolves(reference: str) -> bool:
    """Does `package.module.attribute` (optionally called, `...()`) name something importable?"""
    parts = reference.removesuffix("()").split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_every_module_reference_in_the_docs_resolves() -> None:
    wrong = [
        f"{doc_id(doc)}: {span}"
        for doc in DOCS
        for span in INLINE_CODE.findall(doc.read_text(encoding="utf-8"))
        if MODULE_REF.match(span) and span not in NOT_MODULES and not resolves(span)
    ]
    assert wrong == []

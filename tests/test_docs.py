"""The documentation can be trusted: its code runs, its links resolve, the CLI reference is current.

* Every ```python block of README.md and docs/**/*.md runs. The blocks of one page run in
  order, in one namespace (a block may use what an earlier block of the page made), with a
  fresh temporary folder as the working directory. A block whose first line is
  ``# docs: skip - <reason>`` is not run (for the few that need a running server, a network
  or a model file of your own); there are few, and the test counts them.
* Every relative link of README.md, docs/, eval/README.md and examples/**/README.md points to
  a file or folder of this repository (never above it), and a ``#anchor`` to a heading of the
  page it names.
* docs/cli.md is what typer generates from the CLI today.
* ``mkdocs build --strict`` succeeds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUN_PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
LINK_PAGES = [*RUN_PAGES, ROOT / "eval" / "README.md", *sorted((ROOT / "examples").rglob("README.md"))]
SKIP = "# docs: skip"
MAX_SKIPPED = 3

FENCE = re.compile(
    r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence) *$", re.M | re.S
)
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(\s*(?P<target>[^)\s]+)\s*\)")
INLINE_CODE = re.compile(r"`[^`\n]+`")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$", re.M)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block of `page`."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        if m.group("info").strip().split(" ")[0] in ("python", "py"):
            body = "\n".join(line[len(m.group("indent")) :] for line in m.group("body").splitlines())
            out.append((text.count("\n", 0, m.start()) + 2, body))
    return out


def prose(text: str) -> str:
    """`text` without fenced code blocks and inline code (links there are not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(title: str) -> str:
    """The anchor of a heading, as GitHub and MkDocs' toc make it for plain headings."""
    title = re.sub(r"`|\*\*|__|<[^>]+>", "", title)
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title).strip().lower()
    title = re.sub(r"[^\w\- ]", "", title)
    return re.sub(r"[ ]+", "-", title)


def anchors(page: Path) -> set[str]:
    return {slug(m.group("title")) for m in HEADING.finditer(FENCE.sub("", page.read_text(encoding="utf-8")))}


def broken_links(page: Path) -> list[str]:
    """One line per link of `page` that leaves the repository or names no file or heading."""
    text = prose(page.read_text(encoding="utf-8"))
    out = []
    for m in [*LINK.finditer(text), *IMAGE.finditer(text)]:
        target = m.group("target")
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: ... (not fetched)
            continue
        path_part, _, anchor = target.partition("#")
        where = page if not path_part else (page.parent / path_part).resolve()
        if not where.is_relative_to(ROOT):
            out.append(f"{rel(page)}: {target} points outside the repository")
        elif not where.exists():
            out.append(f"{rel(page)}: {target} does not exist")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            out.append(f"{rel(page)}: {target}: no heading with anchor #{anchor} in {rel(where)}")
    return out


@pytest.mark.parametrize("page", RUN_PAGES, ids=rel)
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for line, code in python_blocks(page):
        if code.lstrip().startswith(SKIP):
            continue
        try:
            exec(compile(code, f"{rel(page)}:{line}", "exec"), namespace)  # noqa: S102 - the docs' own code
        except Exception as exc:
            pytest.fail(f"{rel(page)}, the python block at line {line} raised {exc!r}:\n{code}")


def test_few_blocks_are_skipped_and_each_says_why() -> None:
    blocks = [(rel(p), line, code) for p in RUN_PAGES for line, code in python_blocks(p)]
    skipped = [b for b in blocks if b[2].lstrip().startswith(SKIP)]
    assert len(skipped) <= MAX_SKIPPED, [s[:2] for s in skipped]
    for page, line, code in skipped:
        first = code.lstrip().splitlines()[0]
        assert re.match(rf"{SKIP} - \S.{{8,}}", first), f"{page}:{line}: say why, as '{SKIP} - <reason>'"


def test_block_extraction_finds_blocks_and_skips(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("x\n\n```python\na = 1\n```\n\n```bash\nls\n```\n\n  ```py\n  b = 2\n  ```\n")
    assert python_blocks(page) == [(4, "a = 1"), (12, "b = 2")]


@pytest.mark.parametrize("page", LINK_PAGES, ids=rel)
def test_links_resolve_inside_the_repository(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_checker_catches_what_it_should(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## Some `code` here\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#some-code-here) [ok](#top-heading) [web](https://example.org/x)\n"
        "[gone](docs/missing.md) [up](../shared/data) [anchor](docs/a.md#nope)\n"
        "`[not a link](nowhere.md)`\n\n# Top heading\n"
    )
    assert broken_links(page) == [
        "README.md: docs/missing.md does not exist",
        "README.md: ../shared/data points outside the repository",
        "README.md: docs/a.md#nope: no heading with anchor #nope in docs/a.md",
    ]


def test_no_page_names_a_path_of_this_machine() -> None:
    for page in RUN_PAGES:
        text = page.read_text(encoding="utf-8")
        assert "../shared/" not in text and "/work/" not in text, rel(page)


def cli_reference() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "typer", "hybrid.cli", "utils", "docs", "--name", "hybrid", "--title", "CLI reference"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "100", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cli_reference_is_current() -> None:
    expected = cli_reference()
    assert (DOCS / "cli.md").read_text(encoding="utf-8").rstrip() == expected.rstrip(), (
        "docs/cli.md is out of date; regenerate it with: "
        "typer hybrid.cli utils docs --name hybrid --title 'CLI reference' --output docs/cli.md"
    )


def test_cli_reference_documents_every_command() -> None:
    import typer.main

    from hybrid.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert commands and all(f"## `hybrid {name}`" in text for name in commands)


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists() and (tmp_path / "site" / "api" / "index.html").exists()

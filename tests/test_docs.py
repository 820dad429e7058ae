"""Every Python block of README.md and of the guides in docs/ runs, so no guide goes stale.

The ```python blocks of one file run in order, in one namespace, in a fresh temporary working
directory (what a reader gets by pasting them one after the other). Blocks in other languages
(```bash, ```text, ```pycon) are not run. A marker comment on the line just before a block
changes that:

* `<!-- slow -->`: the block takes long; it runs only in the slow test of its file
  (`make test-all`), with every block of the file. The quick test runs the other blocks, so a
  later block must not need what a slow one made.
* `<!-- not run: REASON -->`: the block cannot run here (it downloads, or needs a cluster);
  REASON says why.

The guides use honestly small settings (a few tasks, a few hundred images, one epoch) and say
what to use for real results; their data is the Fashion-MNIST files Debian installs
(`make data`) and scikit-learn's digits, so nothing downloads.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDES = sorted((ROOT / "docs").glob("*.md"))
FILES = [ROOT / "README.md"] + GUIDES

FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!--\s*(slow|not run:[^>]*?)\s*-->\s*$")


def code_blocks(path):
    """(first line number, language, marker, source) of every fenced block of `path`, in order."""
    text = path.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        indent = len(match.group("indent"))
        body = "".join(line[indent:] + "\n" for line in match.group("body").splitlines())
        first_line = text.count("\n", 0, match.start("body")) + 1
        blocks.append((first_line, match.group("info").strip(), marker and marker.group(1), body))
    return blocks


def python_blocks(path, slow):
    """The blocks of `path` to run: Python, not `not run`, and the slow ones only if `slow`."""
    return [
        (line, source) for line, language, marker, source in code_blocks(path)
        if language == "python" and not (marker or "").startswith("not run")
        and (slow or marker != "slow")
    ]


def run_blocks(path, slow, directory, monkeypatch):
    monkeypatch.chdir(directory)
    namespace = {"__name__": "__main__"}
    for line, source in python_blocks(path, slow):
        # Padded so that a traceback names the line of the Markdown file.
        code = compile("\n" * (line - 1) + source, str(path.relative_to(ROOT)), "exec")
        exec(code, namespace)


def has_slow_blocks(path):
    return any(marker == "slow" for _, language, marker, _ in code_blocks(path)
               if language == "python")


def label(path):
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", FILES, ids=label)
def test_the_python_blocks_run(path, tmp_path, monkeypatch):
    run_blocks(path, False, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in FILES if has_slow_blocks(p)], ids=label)
def test_the_python_blocks_run_with_the_slow_ones(path, tmp_path, monkeypatch):
    run_blocks(path, True, tmp_path, monkeypatch)


def test_every_python_block_parses_and_every_marker_is_known():
    # A typo in a marker would silently run or skip a block; a broken slow block would only
    # show in `make test-all`.
    for path in FILES:
        text = path.read_text()
        for comment in re.findall(r"<!--(.*?)-->", text, re.DOTALL):
            comment = comment.strip()
            assert comment == "slow" or comment.startswith("not run:") or not re.match(
                r"(slow|skip|not[ -]run)\b", comment), f"{label(path)}: unknown marker {comment!r}"
        for line, language, marker, source in code_blocks(path):
            if language == "python":
                ast.parse(source, f"{label(path)}:{line}")


def test_the_readme_keeps_the_set_up_commands_and_has_no_dates():
    readme = (ROOT / "README.md").read_text()
    # CI's .ci/run calls `make test`: the README says that it is the test command.
    assert "make test" in readme and "make demo" in readme
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", readme), "a date in README.md"
    assert len(readme.splitlines()) <= 160


def layout_table():
    """The module rows of docs/layout.md's table, in order: a list of sets of paths like
    `layers/grown_base.py` (a row may name several modules of one folder: `bench/results.py`,
    `progress.py`)."""
    rows = []
    for cell in re.findall(r"^\| (`[^|]+`) \|", (ROOT / "docs" / "layout.md").read_text(), re.M):
        folder, row = "", set()
        for name in re.findall(r"`([\w/]+\.py)`", cell):
            if "/" in name:
                folder = name.rsplit("/", 1)[0] + "/"
                row.add(name)
            else:
                row.add(folder + name)
        rows.append(row)
    return rows


def test_the_layout_guide_names_every_module_in_the_order_of_the_imports():
    from test_layout import MODULES, imported_modules

    rows = layout_table()
    listed = set().union(*rows)
    package = ROOT / "keras_grown"
    modules = {
        str(p.relative_to(package)) for p in package.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py", "version.py")
    }
    assert sorted(modules - listed) == [], "modules missing from docs/layout.md's table"
    assert sorted(listed - modules) == [], "docs/layout.md names modules that do not exist"

    def table_modules(dotted):
        # A package (`keras_grown.layers`) stands for every module of it; the package root
        # (`import keras_grown as kg` in cli/run.py) and version.py for none.
        path = dotted.replace("keras_grown.", "", 1).replace(".", "/")
        return {m for m in listed if m == path + ".py" or m.startswith(path + "/")}

    row_of = {m: i for i, row in enumerate(rows) for m in row}
    below = []
    for name, path in MODULES.items():
        module = str(path.relative_to(package))
        if module not in row_of:
            continue
        for imported in imported_modules(name, path):
            if imported == "keras_grown":
                continue
            later = [m for m in table_modules(imported) if row_of[m] > row_of[module]]
            below += [f"{module} imports {m}, listed below it" for m in later]
    assert below == [], "docs/layout.md's order is not the order of the imports"

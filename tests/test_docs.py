"""The documentation against the code: the site builds strictly, the configuration table names
exactly the variables the code reads, the HTTP API page covers every operation, the README stays
short and keeps its Quickstart."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import streams.config
from streams.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIG_PAGE = DOCS / "reference" / "configuration.md"
README = ROOT / "README.md"
NAME = re.compile(r"SPENDSENTRY_[A-Z0-9_]*[A-Z0-9]")
#: folders whose code may read SPENDSENTRY_* variables outside Settings (developer tools, the bench)
CODE_DIRS = ("streams", "bench", "alerts", "detectors", "schemas")


class RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every name asked of it."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def get(self, name: str, default=None):  # type: ignore[override]
        self.asked.add(name)
        return default

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.asked.add(name)
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def settings_variables() -> set[str]:
    """Every SPENDSENTRY_* name Settings reads: the names `Settings.from_env` asks of the mapping
    it is given, plus every such string literal in the module that defines Settings (a name read
    only on some branch, e.g. when another variable is set, is still found)."""
    env = RecordingEnv()
    Settings.from_env(env)
    asked = {name for name in env.asked if NAME.fullmatch(name)}
    source = Path(inspect.getsourcefile(streams.config)).read_text()
    literals = {node.value for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.fullmatch(node.value)}
    assert asked, "Settings.from_env read no SPENDSENTRY_* variable from the mapping it was given"
    return asked | literals


def environ_reads_elsewhere() -> set[str]:
    """SPENDSENTRY_* names read straight from os.environ anywhere in the code (developer tools)."""
    pattern = re.compile(r"""environ(?:\.get\(|\[)\s*["'](SPENDSENTRY_[A-Z0-9_]+)["']""")
    names: set[str] = set()
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            names.update(pattern.findall(path.read_text(encoding="utf-8")))
    return names


def documented_variables(page: Path = CONFIG_PAGE) -> set[str]:
    """The names in the first column of the page's variable table."""
    names: set[str] = set()
    in_table = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if re.match(r"\|\s*variable\s*\|", line):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        if in_table:
            first_cell = line.split("|")[1]
            names.update(NAME.findall(first_cell))
    assert in_table, f"{page.relative_to(ROOT)} has no '| variable | default | meaning |' table"
    return names


def compare(documented: set[str], read_by_settings: set[str], read_elsewhere: set[str]) -> list[str]:
    problems = []
    if missing := sorted(read_by_settings - documented):
        problems.append("read by Settings but missing from docs/reference/configuration.md: " + ", ".join(missing))
    if undocumented_tools := sorted(read_elsewhere - documented):
        problems.append("read from os.environ by the code but missing from the table: " + ", ".join(undocumented_tools))
    if unknown := sorted(documented - read_by_settings - read_elsewhere):
        problems.append("in docs/reference/configuration.md but read by no code: " + ", ".join(unknown))
    return problems


def test_configuration_table_matches_the_code() -> None:
    problems = compare(documented_variables(), settings_variables(), environ_reads_elsewhere())
    assert not problems, "\n".join(problems)


def test_the_configuration_check_fails_on_a_missing_or_an_unknown_row(tmp_path: Path) -> None:
    page = CONFIG_PAGE.read_text(encoding="utf-8")
    broken = tmp_path / "configuration.md"
    row = next(line for line in page.splitlines() if line.startswith("| `SPENDSENTRY_WEB_PORT`"))
    broken.write_text(page.replace(row + "\n", "") + "\n", encoding="utf-8")
    problems = compare(documented_variables(broken), settings_variables(), environ_reads_elsewhere())
    assert problems == ["read by Settings but missing from docs/reference/configuration.md: SPENDSENTRY_WEB_PORT"]

    broken.write_text(page.replace(row, row + "\n| `SPENDSENTRY_NO_SUCH_THING` | — | invented |"), encoding="utf-8")
    problems = compare(documented_variables(broken), settings_variables(), environ_reads_elsewhere())
    assert problems == ["in docs/reference/configuration.md but read by no code: SPENDSENTRY_NO_SUCH_THING"]


def test_the_recording_env_sees_what_settings_reads() -> None:
    read = settings_variables()
    assert {"SPENDSENTRY_BROKER", "SPENDSENTRY_KAFKA_SASL_PASSWORD", "SPENDSENTRY_GPU_PRICES_FILE"} <= read


def names_in(text: str) -> set[str]:
    """Full SPENDSENTRY_* names in prose (a wildcard like ``SPENDSENTRY_SEVERITY_*`` is not a name)."""
    return {m.group().rstrip("_") for m in re.finditer(r"SPENDSENTRY_[A-Z0-9_]+", text)
            if not text.startswith("*", m.end())}


def test_every_variable_the_readme_and_the_docs_mention_is_in_the_configuration_table() -> None:
    pages = [README, *DOCS.rglob("*.md")]
    mentioned = {name: page for page in pages for name in names_in(page.read_text(encoding="utf-8"))}
    unknown = {name: str(mentioned[name].relative_to(ROOT)) for name in set(mentioned) - documented_variables()}
    assert not unknown, f"variables mentioned but not in the configuration table: {unknown}"


def _hook():
    spec = importlib.util.spec_from_file_location("openapi_page", DOCS / "hooks" / "openapi_page.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_http_api_page_renders_every_operation_of_the_openapi_document() -> None:
    hook = _hook()
    document = hook.load_openapi(ROOT)
    markdown = hook.render(document)
    operations = [(method, path) for path, item in document["paths"].items() for method in hook.METHODS if method in item]
    assert operations
    for method, path in operations:
        assert f"### {method.upper()} {path}\n" in markdown
    assert hook.MARKER in (DOCS / "reference" / "http-api.md").read_text(encoding="utf-8")


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "http-api" / "index.html").is_file()


def test_readme_is_short_and_keeps_the_quickstart() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines (at most 250: the reference lives in docs/)"
    assert "## Quickstart" in lines
    quickstart = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"^make demo\b", quickstart, re.M), "the Quickstart lost `make demo`"
    assert re.search(r"^make test\b", quickstart, re.M), "the Quickstart lost `make test`"


TEST_REF = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?")


def dangling_test_references(texts: Mapping[str, str], root: Path = ROOT) -> list[str]:
    """``tests/...py[::name]`` references whose file or test function does not exist."""
    dangling = []
    for where, text in texts.items():
        for path, name in TEST_REF.findall(text):
            file = root / path
            if not file.is_file():
                dangling.append(f"{where}: {path}")
            elif name and not re.search(rf"^\s*(async )?def {name}\b", file.read_text(encoding="utf-8"), re.M):
                dangling.append(f"{where}: {path}::{name}")
    return dangling


def test_every_test_the_docs_name_exists() -> None:
    """The Guarantees table and the rest cite tests by path: a move or a rename must update them."""
    pages = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in [README, *DOCS.rglob("*.md")]}
    assert dangling_test_references(pages) == []


def test_a_dangling_test_reference_is_found() -> None:
    assert dangling_test_references({"page": "see tests/test_docs.py::no_such_test and tests/nope.py"}) == [
        "page: tests/test_docs.py::no_such_test", "page: tests/nope.py"]


def test_no_merge_conflict_markers_anywhere() -> None:
    """A merge that left ``<<<<<<<`` lines in a page still builds; this does not let it pass."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    marked = [name for name in files if (ROOT / name).suffix in {".md", ".py", ".yml", ".toml", ".json", ".html", ".js"}
              and re.search(r"^(<{7}|>{7}) ", (ROOT / name).read_text(encoding="utf-8", errors="replace"), re.M)]
    assert marked == []

"""The house rules that keep the package's structure: one layout module, layers, no import cycles.

These read the package's own source (`ast`), so a new module inherits them without being listed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from wikisnap.transforms.formats import layout

REPO = Path(__file__).resolve().parent.parent
# the installed package's folders (setup.py's package_dir): dotted prefix -> folder
FOLDERS = {
    "wikisnap": REPO / "wikisnap",
    "wikisnap.pipelines": REPO / "pipelines",
    "wikisnap.transforms": REPO / "transforms",
    "wikisnap.schemas": REPO / "schemas",
    "wikisnap.configs": REPO / "configs",
}
LAYOUT = REPO / "transforms" / "formats" / "layout.py"


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    out = {}
    for prefix, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if prefix == "wikisnap" and parts and parts[0] in {"pipelines", "transforms", "schemas", "configs"}:
                continue
            out[".".join([prefix, *parts])] = path
    return out


def test_the_package_is_what_setup_py_installs():
    names = set(modules())
    assert {"wikisnap.transforms.formats.layout", "wikisnap.transforms.parse.wikitext"} <= names
    setup = (REPO / "setup.py").read_text()
    packages = {m for m, p in modules().items() if p.name == "__init__.py"}
    for package in packages:
        assert f'"{package}"' in setup, f"setup.py does not install {package}"


# -- one home for every output and temp path ------------------------------------------------

# Literals that spell a path of a snapshot, an output's control folder or a run's temp folder.
PATH_LITERALS = ("_namespace_", "report.pickle", "manifest.json", ".wikisnap", "commit.json", "_deadletters.ndjson")
# Folder names of those layouts: a join() of one of them outside the layout module spells a path.
LAYOUT_SEGMENTS = {
    "parts", "progress", "attempts", "spill", "html", "staging", "tmp", "previous", "parquet", "text",
    "deadletter", "batches", "lock",
}  # fmt: skip


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def spells(value: str, literal: str) -> bool:
    """Whether `value` is, or is a path through, the layout name `literal` (`_namespace_`: anywhere)."""
    if literal.startswith("_"):
        return literal in value
    return (
        value == literal or value.endswith("/" + literal) or value.startswith(literal + "/") or f"/{literal}/" in value
    )


def path_literals(source: str) -> list[str]:
    """Where `source` spells a layout path itself: line and what it spells."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        # prose (help texts, messages: they contain a space) may name a file; code must ask the layout
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if " " not in node.value:
                for literal in PATH_LITERALS:
                    if spells(node.value, literal):
                        found.append(f"{node.lineno}: {literal!r} in {node.value[:60]!r}")
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "join":
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and arg.value in LAYOUT_SEGMENTS:
                        found.append(f"{node.lineno}: join(…, {arg.value!r}, …)")
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            for segment in LAYOUT_SEGMENTS:
                if f"/{segment}/" in text:
                    found.append(f"{node.lineno}: f-string path through {segment!r}")
    return found


def test_no_module_but_the_layout_spells_an_output_or_temp_path():
    offenders = {
        name: hits
        for name, path in modules().items()
        if path != LAYOUT and (hits := path_literals(path.read_text(encoding="utf-8")))
    }
    assert not offenders, "\n".join(f"{n}: {h}" for n, hs in offenders.items() for h in hs)


@pytest.mark.parametrize(
    "source",
    [
        'x = join(temp, "parts", sid)',
        'x = f"{root}/parquet/{sid}"',
        'x = f"{root}{x}_namespace_{ns}.json"',
        'x = os.path.join(out, "deadletter")',
        'NAME = "report.pickle"',
        'x = f"{db}_namespace_{ns}"',
    ],
)
def test_the_path_check_sees_each_way_of_spelling_a_path(source):
    assert path_literals(source)


def test_the_layout_round_trips_its_own_names():
    for db, ns in (("enwiki", 0), ("zh_min_nanwiki", 14), ("wikidatawiki", 120)):
        sid = layout.snapshot_id(db, ns)
        assert layout.parse_snapshot_id(sid) == (db, ns)
        assert layout.parse_snapshot_id(layout.tarball_name(db, ns)) == (db, ns)
        assert layout.parse_snapshot_id(layout.metadata_name(db, ns)) == (db, ns)
        assert layout.OWNED_FILE.match(layout.tarball_name(db, ns))
    assert layout.parse_snapshot_id("README.md") is None
    assert layout.parse_snapshot_id("enwiki_namespace_x.tar.gz") is None


# -- layers and cycles -----------------------------------------------------------------------


def imports_of(name: str, path: Path, names: set[str]) -> set[str]:
    """The package modules `name` imports, at module level or inside functions alike."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in names:
                t = t.rpartition(".")[0]
            if t and t != name and t != "wikisnap":
                out.add(t)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    names = set(mods)
    return {name: imports_of(name, path, names) - {name} for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (as a list of modules, first repeated last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_even_through_function_level_imports():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_check_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# Each layer imports only its own layer or those below it (lowest first).
LAYERS = [
    ("wikisnap.faults", "wikisnap.configs", "wikisnap.schemas"),
    ("wikisnap.transforms.formats",),
    ("wikisnap.transforms.parse",),
    (
        "wikisnap.transforms.read", "wikisnap.transforms.records", "wikisnap.transforms.redirects",
        "wikisnap.transforms.enrich", "wikisnap.transforms.history", "wikisnap.transforms.write",
        "wikisnap.transforms.verify", "wikisnap.transforms.write_structured", "wikisnap.transforms.spilljoin",
        "wikisnap.transforms.deadletters", "wikisnap.transforms.writeprogress", "wikisnap.transforms.pooled",
    ),
    ("wikisnap.transforms.update",),
    ("wikisnap.pipelines",),
]  # fmt: skip


def layer_of(name: str) -> int | None:
    for n, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return n
    return None


def test_every_module_has_a_layer_and_imports_only_down():
    upward = []
    for name, deps in import_graph().items():
        mine = layer_of(name)
        if name in ("wikisnap", "wikisnap.transforms"):
            continue
        assert mine is not None, f"{name} is in no layer: add it to LAYERS"
        for dep in deps:
            theirs = layer_of(dep)
            if theirs is not None and theirs > mine:
                upward.append(f"{name} -> {dep}")
    assert not upward, "\n".join(sorted(upward))


def test_every_module_imports():
    # a name the graph above cannot resolve (a module moved away) fails here instead
    import importlib

    for name in modules():
        importlib.import_module(name)

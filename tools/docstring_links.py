"""Keep each public definition's "Introduced in notebooks/NN" line true.

Every public function and class of ``mtrec_study`` ends its docstring with one of:

* ``Introduced in notebooks/NN_name.ipynb.``: the first numbered notebook whose *code* uses it;
* ``Used by mtrec_study.a, mtrec_study.b.``: when no notebook's code uses it, the package modules
  whose code does (``Used by the tests only.`` for a public helper that only the tests call).

"Uses" is resolved through imports, not guessed from words: ``from mtrec_study.x import f`` then
``f(...)``, or ``from mtrec_study import evaluation as E`` then ``E.f``, resolved through the
packages' re-exports to the module that defines ``f``. Dead code (used by no notebook, module or
test) is reported as ``Used by no notebook or module.``

``python -m tools.docstring_links`` lists the lines that are wrong; ``--fix`` rewrites them in
place. ``tests/unit/test_layout.py`` fails while any is wrong.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mtrec_study"
NOTEBOOKS = ROOT / "notebooks"
LINE = re.compile(r"^(?P<indent>[ \t]*)(?:Introduced in notebooks/[0-9]{2}_[a-z_]+\.ipynb|Used by [^\n]+?)\.[ \t]*$", re.M)


@dataclass
class Definition:
    module: str
    name: str
    path: Path
    line: str | None  # the current link line, stripped, or None

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@cache
def _trees() -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p): (p, ast.parse(p.read_text(encoding="utf-8"))) for p in _package_files()}


def definitions() -> list[Definition]:
    """Public top-level functions and classes of the package (a re-export is not a definition)."""
    out = []
    for mod, (path, tree) in _trees().items():
        if path.name == "__main__.py":
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                doc = ast.get_docstring(node, clean=False) or ""
                m = LINE.search(doc)
                out.append(Definition(mod, node.name, path, m.group(0).strip() if m else None))
    return out


def _absolute(module: str | None, level: int, here: str, is_package: bool) -> str:
    if not level:
        return module or ""
    base = here.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


@cache
def _exports() -> dict[str, str]:
    """``{qualified name a package re-exports: the qualified name it stands for}``."""
    out = {}
    for mod, (path, tree) in _trees().items():
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                src = _absolute(node.module, node.level, mod, path.name == "__init__.py")
                for a in node.names:
                    out[f"{mod}.{a.asname or a.name}"] = f"{src}.{a.name}"
    return out


def canonical(name: str) -> str:
    """Follow re-exports (``mtrec_study.evaluation.tidy_rows`` -> ``mtrec_study.results.tidy_rows``)."""
    seen = set()
    exports = _exports()
    while name in exports and name not in seen:
        seen.add(name)
        name = exports[name]
    return name


def qualified_uses(tree: ast.AST, here: str = "", is_package: bool = False, own: set[str] = frozenset()) -> set[str]:
    """Qualified ``mtrec_study`` names the code of ``tree`` uses (imports alone are not uses).

    ``own`` are the module's own top-level definitions, which its code may use by bare name.
    """
    bindings: dict[str, str] = {n: f"{here}.{n}" for n in own}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            src = _absolute(node.module, node.level, here, is_package)
            if src.startswith("mtrec_study"):
                for a in node.names:
                    bindings[a.asname or a.name] = f"{src}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("mtrec_study"):
                    bindings[a.asname or a.name.split(".")[0]] = a.asname and a.name or a.name.split(".")[0]

    def resolve(node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return bindings.get(node.id)
        if isinstance(node, ast.Attribute):
            base = resolve(node.value)
            return f"{canonical(base)}.{node.attr}" if base else None
        return None

    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Name, ast.Attribute)):
            q = resolve(node)
            if q:
                out.add(canonical(q))
    return out


def _code_of_notebook(nb: Path) -> str:
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return "\n".join(ln for ln in code.splitlines() if not ln.lstrip().startswith(("%", "!")))


@cache
def notebook_uses() -> dict[str, frozenset[str]]:
    """``{notebook file name: qualified package names its code uses}`` for the numbered notebooks."""
    return {nb.name: frozenset(qualified_uses(ast.parse(_code_of_notebook(nb))))
            for nb in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))}


def _own_names(tree: ast.Module) -> set[str]:
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def _without(tree: ast.Module, name: str) -> ast.Module:
    """The module without the definition called ``name`` (a definition does not use itself)."""
    return ast.Module(body=[n for n in tree.body if getattr(n, "name", None) != name], type_ignores=[])


@cache
def package_uses() -> dict[str, frozenset[str]]:
    """``{module: qualified names its code uses}``; a re-export is not a use."""
    out = {}
    for mod, (path, tree) in _trees().items():
        body = ast.Module(body=[n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
                          + [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
        out[mod] = frozenset(qualified_uses(body, mod, path.name == "__init__.py", _own_names(tree)))
    return out


@cache
def test_uses() -> frozenset[str]:
    """Qualified package names the test suite's code uses."""
    names = set()
    for p in sorted((ROOT / "tests").rglob("*.py")):
        names |= qualified_uses(ast.parse(p.read_text(encoding="utf-8")))
    return frozenset(names)


def _used_by_own_module(d: Definition) -> bool:
    _, tree = _trees()[d.module]
    return d.qualified in qualified_uses(_without(tree, d.name), d.module, d.path.name == "__init__.py",
                                         _own_names(tree))


def expected_line(d: Definition, nbs=None, pkg=None) -> str:
    """The link line ``d`` should carry."""
    nbs = notebook_uses() if nbs is None else nbs
    pkg = package_uses() if pkg is None else pkg
    users = [nb for nb, names in nbs.items() if d.qualified in names]
    if users:
        return f"Introduced in notebooks/{users[0]}."
    mods = [m for m, names in pkg.items() if m != d.module and d.qualified in names]
    if _used_by_own_module(d):
        mods = [d.module, *mods]
    if mods:
        return f"Used by {', '.join(mods)}."
    return "Used by the tests only." if d.qualified in test_uses() else "Used by no notebook or module."


def problems() -> list[tuple[Definition, str]]:
    """Definitions whose link line is missing or wrong, with the line they should carry."""
    return [(d, want) for d in definitions() if d.line != (want := expected_line(d))]


def fix(found: list[tuple[Definition, str]]) -> None:
    """Rewrite each wrong or missing line in its docstring."""
    by_path: dict[Path, list[tuple[Definition, str]]] = {}
    for d, want in found:
        by_path.setdefault(d.path, []).append((d, want))
    for path, items in by_path.items():
        src = path.read_text(encoding="utf-8")
        tree = ast.parse(src)
        lines = src.splitlines(keepends=True)
        nodes = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        for d, want in sorted(items, key=lambda x: -nodes[x[0].name].body[0].lineno):
            doc_node = nodes[d.name].body[0]
            if not (isinstance(doc_node, ast.Expr) and isinstance(doc_node.value, ast.Constant)):
                raise SystemExit(f"{path}:{nodes[d.name].lineno}: {d.name} has no docstring")
            a, b = doc_node.lineno - 1, doc_node.end_lineno
            block = "".join(lines[a:b])
            if LINE.search(block):
                block = LINE.sub(lambda m, w=want: m.group("indent") + w, block, count=1)
            else:  # add the line before the closing quotes
                indent = " " * (nodes[d.name].col_offset + 4)
                end = block.rstrip().rstrip("\"'")
                quotes = block.rstrip()[len(end):]
                block = end.rstrip() + f"\n\n{indent}{want}\n{indent}{quotes}\n"
            lines[a:b] = [block]
        path.write_text("".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fix", action="store_true", help="rewrite the wrong lines in place")
    args = ap.parse_args(argv)
    found = problems()
    for d, want in found:
        print(f"{d.path.relative_to(ROOT)}: {d.name}: {d.line!r} -> {want!r}")
    if args.fix and found:
        fix(found)
        print(f"fixed {len(found)}")
        return 0
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())

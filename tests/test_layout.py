"""The layout of compare/: imports go one way (no cycle, top-level or inside a function), and no
module imports another's private name; importing compare loads nothing heavy."""
import ast
import os
import subprocess
import sys

from helpers import ROOT

PACKAGE = os.path.join(ROOT, "compare")


def modules():
    """{'compare.x.y': path} for every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(module, path):
    """(imported module, names) of every import in the file, relative ones resolved."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            out.append((target, [alias.name for alias in node.names]))
    return out


def graph():
    """Edges between the package's modules: `from . import x` counts as an import of compare.x."""
    mods = modules()
    edges = {m: set() for m in mods}
    for module, path in mods.items():
        for target, names in imports(module, path):
            submodules = {f"{target}.{n}" for n in names} & set(mods)
            for candidate in submodules or {target}:
                if candidate in mods and candidate != module:
                    edges[module].add(candidate)
    return edges


def test_no_import_cycle_in_compare():
    edges, state, cycles = graph(), {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"
    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    # a package imports its own submodules (compare.cli → compare.cli.run): that is not a cycle back
    real = [c for c in cycles if not all(a.startswith(b + ".") or b.startswith(a + ".") for a, b in zip(c, c[1:]))]
    assert real == []


def test_no_private_name_crosses_a_module():
    mods = modules()
    crossing = [(module, target, name) for module, path in mods.items() for target, names in imports(module, path)
                if target.startswith("compare") for name in names if name.startswith("_")]
    assert crossing == []


def test_importing_compare_loads_neither_numpy_nor_keras():
    code = "import sys, compare; print(sorted(m for m in ('numpy', 'keras', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.stdout.strip() == "[]", out.stderr


def test_every_package_is_listed_in_pyproject():
    import pathlib
    import tomllib
    root = pathlib.Path(ROOT)
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {str(p.parent.relative_to(root)).replace("/", ".") for top in ("numpy_impl", "keras_impl", "compare")
             for p in (root / top).rglob("__init__.py")}
    assert found == listed

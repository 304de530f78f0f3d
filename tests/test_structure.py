"""The shape of the code: families stay in their folders, no import cycles, no oversized files.

These are the rules that keep a new family one folder (DESIGN.md, "How to add a family").
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "edgevlm"
GENERIC = ("export", "quantize", "runtime")
MAX_LINES = 400


def _family_words() -> set[str]:
    """Every registered family's name and tiny names, plus the identifiers only one family uses."""
    from edgevlm.families import FAMILIES

    words = {"minicpm", "paligemma", "gemma", "navit", "resampler", "vpm", "siglip", "idefics", "smolvlm",
             "internvl", "qwen", "llava", "llama3"}
    for name, family in FAMILIES.items():
        words.add(name.lower())
        words.update(re.split(r"[-_.\d]+", t)[0].lower() for t in family.tiny_names)
    return {w for w in words if len(w) >= 4}


def _code_tokens(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every name and string in the file that is neither a comment nor a docstring."""
    source = path.read_text(encoding="utf-8")
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.add(first.lineno)
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.NAME, tokenize.STRING) and tok.start[0] not in docstrings:
            out.append((tok.start[0], tok.string))
    return out


def test_generic_code_names_no_family():
    words = _family_words()
    pattern = re.compile("|".join(sorted(words, key=len, reverse=True)), re.IGNORECASE)
    found = []
    for folder in GENERIC:
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            for line, text in _code_tokens(path):
                if pattern.search(text):
                    found.append(f"{path.relative_to(PACKAGE)}:{line}: {text[:60]}")
    assert not found, "family names in generic code (move the knowledge into the family's folder):\n" + "\n".join(found)


def _imports(path: Path, module: str) -> set[str]:
    """edgevlm modules a file imports, at any depth (lazy imports inside functions included)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        out.update(n for n in names if n.startswith("edgevlm"))
    return out


def _module_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path, name) if m in modules and m != name}
    return graph


def test_no_import_cycles_between_modules():
    """A module never (even lazily) imports one that imports it back; packages' __init__ re-exports aside."""
    graph = _module_graph()
    # A package's __init__ importing its own submodules is how Python packages work, not a cycle.
    edges = {a: {b for b in targets if not b.startswith(a + ".")} for a, targets in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_python_file_over_400_lines():
    long = [f"{p.relative_to(PACKAGE.parent)}: {n}" for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, f"files over {MAX_LINES} lines (split them by purpose):\n" + "\n".join(long)


def test_every_family_is_one_folder_with_the_contract():
    from edgevlm.families import FAMILIES
    from edgevlm.families.contract import Family

    for name, family in FAMILIES.items():
        assert isinstance(family, Family), name
        assert (PACKAGE / "families" / family.folder / "__init__.py").is_file(), name


def test_the_family_registry_and_specs_import_no_torch():
    """bundle_spec and matches work in the torch-free install: the registry imports no torch or transformers."""
    import subprocess
    import sys

    code = ("import sys, edgevlm.families as f; [fam.matches({}) for fam in f.FAMILIES.values()]; "
            "print([m for m in ('torch', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""The layout keeps its promises: no import cycles among the crate's files (a module may use
its ancestors' items, which are shared, but two modules that are not one another's ancestor
never import each other, directly or around a loop), and the domain imports nothing outside
itself but names, standard and pure crates.

Run by ./scripts/test:  python3 -m unittest discover -s tests/structure
"""

import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "src")
# The domain crate, which the engine re-exports as `ecr_retag::domain`: its files are the
# `domain` modules here, and its `crate::x` is `crate::domain::x`.
DOMAIN = os.path.join(ROOT, "crates", "domain")
DOMAIN_SRC = os.path.join(DOMAIN, "src")
# What the domain may depend on: parsing and matching; nothing that does I/O.
# sha2 and base64: hashing and encoding promotion records, pure computation.
DOMAIN_DEPENDENCIES = {"serde", "serde_json", "serde_path_to_error", "regex", "regex-syntax", "semver", "chrono", "thiserror",
                       "sha2", "base64"}


def modules():
    """{module path: file}, e.g. ("apply", "engine") -> src/apply/engine/mod.rs and
    ("domain", "plan") -> crates/domain/src/plan.rs."""
    out = {}
    for root, prefix in [(SRC, ()), (DOMAIN_SRC, ("domain",))]:
        for folder, _, files in os.walk(root):
            for name in files:
                if not name.endswith(".rs") or os.path.basename(folder) == "bin":
                    continue
                rel = os.path.relpath(os.path.join(folder, name), root)[:-3].split(os.sep)
                if rel == ["lib"]:
                    rel = []
                elif rel[-1] == "mod":
                    rel = rel[:-1]
                if prefix + tuple(rel):
                    out[prefix + tuple(rel)] = os.path.join(folder, name)
    return out


def in_domain(path):
    return path.startswith(DOMAIN_SRC + os.sep)


def code(path):
    """The file without its tests and comments: test modules may use anything."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    cut = text.find("#[cfg(test)]\nmod tests")
    text = text if cut < 0 else text[:cut]
    return re.sub(r"//[^\n]*", "", text)


def crate_paths(text):
    """Every `crate::a::b` path, `use crate::a::{b, c::d}` groups expanded."""
    paths = []
    for m in re.finditer(r"crate((?:::\w+)+)(::\{([^;]*?)\})?", text):
        base = m.group(1).strip(":").split("::")
        if m.group(3) is None:
            paths.append(base)
            continue
        for item in re.split(r",", re.sub(r"\{[^{}]*\}", "", m.group(3))):
            item = item.strip().split(" as ")[0]
            paths.append(base + [p for p in item.split("::") if p and p != "self"])
    return paths


def graph():
    mods = modules()
    edges = {m: set() for m in mods}
    for module, path in mods.items():
        for p in crate_paths(code(path)):
            p = (["domain"] + p) if in_domain(path) else p
            # The longest module the path names.
            for n in range(len(p), 0, -1):
                target = tuple(p[:n])
                if target in mods:
                    break
            else:
                continue
            if target != module and target != module[:len(target)] and module != target[:len(module)]:
                edges[module].add(target)
    return edges


def cycle(edges):
    """One import cycle, as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


class Layout(unittest.TestCase):
    def test_no_import_cycles_among_files(self):
        edges = graph()
        self.assertGreater(sum(len(e) for e in edges.values()), 100, "the parser sees the imports")
        found = cycle(edges)
        self.assertIsNone(found, " -> ".join("::".join(m) for m in found or []))

    def test_the_domain_is_a_crate_that_depends_on_nothing_doing_io(self):
        # The compiler keeps the domain from the engine (it cannot name it); what it may name
        # instead is its dependencies, and std.
        with open(os.path.join(DOMAIN, "Cargo.toml"), encoding="utf-8") as f:
            manifest = f.read()
        section = re.search(r"^\[dependencies\]\n(.*?)(?=^\[)", manifest, re.S | re.M).group(1)
        names = set(re.findall(r"^([\w-]+)\s*=", section, re.M))
        self.assertIn("regex", names, "the parser sees the dependencies")
        self.assertLessEqual(names, DOMAIN_DEPENDENCIES, "a dependency the domain should not have")
        self.assertNotIn("domain", os.listdir(SRC), "the domain lives in crates/domain only")
        domain = [path for path in modules().values() if in_domain(path)]
        self.assertGreater(len(domain), 10)
        for path in domain:
            text = code(path)
            for io in ["tokio", "aws_sdk", "aws_config", "std::fs", "std::net", "std::process", "hyper", "lambda_runtime"]:
                self.assertNotIn(io, text, f"{path} uses {io}")

    def test_no_file_passes_400_code_lines_before_its_tests(self):
        # Code lines: neither blank nor comment. A file of tests only (tests.rs) is all tests.
        long = []
        for module, path in modules().items():
            if module and module[-1] == "tests":
                continue
            lines = [l for l in code(path).splitlines() if l.strip()]
            if len(lines) > 400:
                long.append(f"{os.path.relpath(path, ROOT)}: {len(lines)}")
        self.assertEqual(long, [], "a file this long is asking for a new home")

    def test_the_emulator_package_map_lists_every_module(self):
        package = os.path.join(ROOT, "tests", "emulator", "strict")
        with open(os.path.join(package, "__init__.py"), encoding="utf-8") as f:
            listed = set(re.findall(r"^- (\w+\.py)", f.read(), re.M))
        present = {n for n in os.listdir(package) if n.endswith(".py") and n != "__init__.py"}
        self.assertEqual(listed, present)


if __name__ == "__main__":
    unittest.main()

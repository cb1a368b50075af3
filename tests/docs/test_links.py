"""Every relative link and anchor in README.md and docs/ resolves: a page, a file of the
repository, or a heading of the page it names (GitHub's anchors).

Run by ./scripts/test:  python3 -m unittest discover -s tests/docs
"""

import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def pages():
    out = [os.path.join(ROOT, "README.md")]
    for folder, _, files in os.walk(os.path.join(ROOT, "docs")):
        out += [os.path.join(folder, f) for f in sorted(files) if f.endswith(".md")]
    return out


def prose(path):
    """The page without its code blocks, where brackets are code, not links."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return re.sub(r"```.*?```", "", text, flags=re.S)


def anchors(path):
    """GitHub's anchor for each heading: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    for line in prose(path).splitlines():
        m = re.match(r"^#{1,6} (.*)$", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


class Links(unittest.TestCase):
    def test_every_relative_link_and_anchor_resolves(self):
        broken = []
        checked = 0
        for page in pages():
            for target in LINK.findall(prose(page)):
                if re.match(r"^[a-z]+:", target):
                    continue  # https:, mailto:
                checked += 1
                path, _, anchor = target.partition("#")
                resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
                where = os.path.relpath(page, ROOT)
                if not os.path.exists(resolved):
                    broken.append(f"{where}: {target}: no such file")
                elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
                    broken.append(f"{where}: {target}: no heading #{anchor}")
        self.assertGreater(checked, 20, "the pages link to each other")
        self.assertEqual(broken, [])

    def test_docs_named_by_the_programs_messages_exist(self):
        """A message that sends a person to the docs names a page that is there (and the
        section it quotes, `docs/x.md, \\"Section\\"`, or the anchor it gives)."""
        named = re.compile(r'(docs/[\w/.-]+\.md)(#[\w-]+)?(?:, \\"([^"\\]+)\\")?')
        found, broken = 0, []
        for base in ["src", os.path.join("crates", "domain", "src")]:
            for folder, _, files in os.walk(os.path.join(ROOT, base)):
                for name in files:
                    if not name.endswith(".rs"):
                        continue
                    with open(os.path.join(folder, name), encoding="utf-8") as f:
                        text = f.read()
                    for path, anchor, section in named.findall(text):
                        found += 1
                        page = os.path.join(ROOT, path)
                        if not os.path.exists(page):
                            broken.append(f"{name}: {path}: no such page")
                        elif anchor and anchor[1:] not in anchors(page):
                            broken.append(f"{name}: {path}{anchor}: no such heading")
                        elif section and section not in prose(page):
                            broken.append(f"{name}: {path}: no section {section!r}")
        self.assertGreaterEqual(found, 3, "the messages name docs pages")
        self.assertEqual(broken, [])

    def test_the_readme_stays_short(self):
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            self.assertLessEqual(len(f.read().splitlines()), 200, "reference material belongs in docs/")


if __name__ == "__main__":
    unittest.main()

"""The documentation site's reference pages are the code's: docs/gen_reference.py writes them from
the argparse definitions and the API's docstrings, and the committed pages must be what it writes
(CI then builds the site with `mkdocs build --strict`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def generator():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_pages_are_what_the_code_says():
    pages = generator().pages()
    assert {"commands/build.md", "commands/show.md", "commands/sync.md", "api.md"} <= set(pages)
    for rel, text in pages.items():
        committed = (DOCS / rel).read_text(encoding="utf-8") if (DOCS / rel).exists() else None
        assert committed == text, f"docs/{rel} is stale: run python docs/gen_reference.py"
    assert "| `--enrichment TABLES` |" in pages["commands/build.md"]
    assert "## wikisnap.show" in pages["api.md"] and "```python" in pages["api.md"]


def test_every_page_is_in_the_sites_navigation():
    nav = (DOCS.parent / "mkdocs.yml").read_text()
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")]
    assert pages and all(page in nav for page in pages), pages


def test_the_readme_is_a_front_page_whose_links_resolve():
    import re

    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith(("http://", "https://")):
            assert (DOCS.parent / target).exists(), target
    for recipe in ("wikisnap build --dump-run", "wikisnap publish", "wikisnap sync --config"):
        assert recipe in readme

"""The documentation site (mkdocs.yml, docs/) and the README that points into it.

The site is built as `make docs` builds it, with ``mkdocs build --strict``: a broken link or anchor,
or a page left out of the nav, fails the build (mkdocs.yml's ``validation`` makes them warnings,
and strict mode fails on any warning).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
MAX_README_LINES = 200
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=project, capture_output=True, text=True, timeout=120)


def nav_pages(nav: Any) -> Iterator[str]:
    """Every page file the nav names, however deeply nested."""
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from nav_pages(value)


def built_page(site: Path, page: str) -> Path:
    """Where mkdocs writes ``page`` (directory URLs: api.md -> api/index.html)."""
    stem = page.removesuffix(".md")
    return site / "index.html" if stem == "index" else site / stem / "index.html"


def anchors(html: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html.read_text()))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = build(ROOT, out)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_every_page_in_the_nav_exists_and_is_built(site: Path) -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = list(nav_pages(config["nav"]))
    assert len(pages) == len(set(pages)), pages
    for page in pages:
        assert (DOCS / page).is_file(), page
        assert built_page(site, page).is_file(), page
        html = built_page(site, page).read_text()
        assert not re.search(r'(src|<link[^>]*href)="https?:', html), page  # no script or style from elsewhere
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(pages) == on_disk  # no page outside the nav either
    for needed in ("api.md", "configuration.md", "gpu-pool.md", "deploying.md", "webhooks.md", "keys.md",
                   "benchmarks.md", "architecture.md", "compatibility.md", "metrics.md", "engines.md"):
        assert needed in pages, needed


def readme_links() -> list[str]:
    return [link for link in LINK.findall(README.read_text()) if not re.match(r"[a-z]+:", link)]


def test_every_relative_link_in_the_readme_resolves(site: Path) -> None:
    links = readme_links()
    assert sum(link.startswith("docs/") for link in links) >= 10, links
    for link in links:
        path, _, fragment = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"README.md links to {link}: no such file"
        if fragment and path.endswith(".md") and path.startswith("docs/"):
            page = str(target.relative_to(DOCS))
            assert fragment in anchors(built_page(site, page)), f"README.md links to {link}: no such anchor"


def test_the_readme_is_short_and_keeps_the_two_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) < MAX_README_LINES
    assert re.search(r"^make run\s+#", text, re.M) and re.search(r"^make test\s+#", text, re.M)


def copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    shutil.copytree(DOCS, project / "docs")
    return project


@pytest.mark.parametrize("change", ["a link to a missing page", "a link to a missing anchor", "a page not in the nav"])
def test_the_build_fails_on_a_broken_link_or_a_page_left_out(tmp_path: Path, change: str) -> None:
    project = copy_project(tmp_path)
    as_copied = build(project, tmp_path / "as-copied")
    assert as_copied.returncode == 0, as_copied.stderr  # so the failure below is the change's
    api = project / "docs" / "api.md"
    if change == "a link to a missing page":
        api.write_text(api.read_text().replace("(webhooks.md", "(webhook.md", 1))
        named = "'webhook.md' is not found"
    elif change == "a link to a missing anchor":
        api.write_text(api.read_text().replace("(webhooks.md#", "(webhooks.md#no-such-heading-", 1))
        named = "does not contain an anchor '#no-such-heading-"
    else:
        (project / "docs" / "orphan.md").write_text("# Not in the nav\n")
        named = "orphan.md"
    done = build(project, tmp_path / "site")
    output = done.stdout + done.stderr
    assert done.returncode != 0, f"{change} was accepted:\n{output}"
    assert "WARNING" in output and named in output, output

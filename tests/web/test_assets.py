"""What the browser loads: pinned npm packages vendored as they are, no inline script or
style (the Content-Security-Policy forbids them), and every file a page references
shipped in the wheel (gasometer/_web), node_modules not."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from gasometer.api import docs
from tests.web.conftest import CSP, WEB

LOCK = json.loads((WEB / "package-lock.json").read_text())["packages"]
IMPORT = re.compile(r"""^\s*import\s[^"']*["']([^"']+)["']""", re.M)
REFERENCE = re.compile(r"""(?:src|href)="(/[^"]+)\"""")


def locked(name: str) -> str:
    return str(LOCK[f"node_modules/{name}"]["version"])


def test_package_json_pins_exact_versions_matching_the_lockfile() -> None:
    package = json.loads((WEB / "package.json").read_text())
    for section in ("dependencies", "devDependencies"):
        for name, version in package[section].items():
            assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned: {version}"
            assert locked(name) == version
    assert {"d3", "axe-core", "swagger-ui-dist"} <= set(package["dependencies"]) | set(
        package["devDependencies"]
    )


def test_vendored_files_are_the_pinned_packages() -> None:
    banner = (WEB / "vendor" / "d3.js").read_text().splitlines()[0]
    assert banner.startswith(f"// d3 {locked('d3')} ")
    swagger = WEB / "node_modules" / "swagger-ui-dist"
    if not swagger.exists():
        pytest.skip("web/node_modules not installed (make web-deps)")
    assert json.loads((swagger / "package.json").read_text())["version"] == locked(
        "swagger-ui-dist"
    )
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert (WEB / "vendor" / name).read_bytes() == (swagger / name).read_bytes()


def _page_html() -> dict[str, str]:
    """The dashboard page and the API docs page (its template lives in docs.py)."""
    return {
        "index.html": (WEB / "index.html").read_text(),
        "docs.py": Path(docs.__file__).read_text(),
    }


def test_pages_carry_the_csp_and_no_inline_script_or_style() -> None:
    for name, text in _page_html().items():
        assert f'content="{CSP}' in text, name
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, f"inline script in {name}: {tag}"
        assert "<style" not in text and " style=" not in text, name
    for js in (WEB / "app").rglob("*.js"):
        assert '.attr("style"' not in js.read_text(), js  # styles via CSSOM only


def _references() -> set[str]:
    """Every URL path the pages load: their src/href, then the ES modules' imports."""
    found: set[str] = set()
    for text in _page_html().values():
        found |= {p for p in REFERENCE.findall(text) if not p.startswith("/schema")}
    queue = [p for p in found if p.endswith(".js") and p.startswith("/app/")]
    while queue:
        path = PurePosixPath(queue.pop())
        for spec in IMPORT.findall((WEB / str(path).lstrip("/")).read_text()):
            assert spec.startswith("."), f"{path} imports a bare specifier {spec!r}"
            target = str(PurePosixPath(*_normalise(path.parent / spec).parts))
            if target not in found:
                found.add(target)
                if target.startswith("/app/"):
                    queue.append(target)
    return found


def _normalise(path: PurePosixPath) -> PurePosixPath:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts)


def test_every_file_the_browser_loads_ships_in_the_wheel(tmp_path: Path) -> None:
    refs = _references()
    assert {"/app/main.js", "/vendor/d3.js", "/app/panels/river.js", "/favicon.svg"} <= refs
    for ref in refs:
        assert (WEB / ref.lstrip("/")).is_file(), ref
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."]
    subprocess.run(cmd, check=True, cwd=WEB.parent, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("gasometer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(r for r in refs if f"gasometer/_web{r}" not in names)
    assert missing == []
    assert "gasometer/_web/index.html" in names
    assert not [n for n in names if "node_modules" in n or n.endswith("package-lock.json")]


def test_every_module_is_preloaded() -> None:
    """index.html preloads the whole module graph (no request waterfall)."""
    index = (WEB / "index.html").read_text()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="([^"]+)">', index))
    docs_page = {"/app/schema-docs.js", "/vendor/swagger-ui-bundle.js", "/app/main.js"}
    modules = {r for r in _references() if r.endswith(".js")} - docs_page
    assert preloaded == modules

"""Benchmark page weight: the bytes of each questionnaire page and its assets, as served gzipped.

Run: .venv/bin/python bench/bench_pages.py [--logo FILE] [--level 6]

Walks the whole questionnaire with the Flask test client on a temporary SQLite file (a typical
client: isotretinoin, cold sores, fillers; see bench/_common.py): the start page, each
/q/<page> page, check answers, the declaration and the confirmation. For each page it reports
the HTML bytes, the HTML gzipped at level 6 (as a reverse proxy would serve it), the
compressed bytes of every asset the page references (link rel=stylesheet, script src, img src,
and any url() inside those stylesheets), and the total of a first visit (page + all its assets,
nothing cached). Text assets (CSS, JS, SVG) are counted gzipped; images as they are (a proxy
does not gzip PNG or JPEG). ``data:`` URIs are already inside the HTML.

Target: 20 KB (20,480 bytes) or less per page including assets.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from _common import make_app, typical_answers

from screening import questions as qd  # noqa: E402
from tests.web import csrf_token, page_data  # noqa: E402

TARGET_BYTES = 20 * 1024
TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml", "application/xml")
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""")


class AssetParser(HTMLParser):
    """Collect stylesheet, script and image URLs from a page."""

    def __init__(self):
        super().__init__()
        self.assets: list[tuple[str, str]] = []  # (kind, url)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and "stylesheet" in (a.get("rel") or "").lower().split() and a.get("href"):
            self.assets.append(("css", a["href"]))
        elif tag == "script" and a.get("src"):
            self.assets.append(("js", a["src"]))
        elif tag == "img" and a.get("src"):
            self.assets.append(("img", a["src"]))


def gz(data: bytes, level: int) -> int:
    return len(gzip.compress(data, compresslevel=level, mtime=0))


class Assets:
    """Fetch each asset once through the test client; remember its served size."""

    def __init__(self, client, level: int):
        self.client = client
        self.level = level
        self.sizes: dict[str, tuple[str, int, int]] = {}  # url -> (type, raw, served)

    def size(self, url: str) -> tuple[str, int, int]:
        if url not in self.sizes:
            response = self.client.get(url)
            data = response.get_data()
            mime = response.mimetype or ""
            status = response.status_code
            response.close()
            if status != 200:
                raise AssertionError(f"asset {url} answered {status}")
            served = gz(data, self.level) if mime.startswith(TEXT_TYPES) else len(data)
            self.sizes[url] = (mime, len(data), served)
        return self.sizes[url]

    def of_page(self, page_url: str, html: str) -> list[tuple[str, int]]:
        """Return (url, served bytes) of every asset ``html`` needs, stylesheet url()s included."""
        parser = AssetParser()
        parser.feed(html)
        found: list[tuple[str, int]] = []
        queue = [(kind, urljoin(page_url, url)) for kind, url in parser.assets]
        seen = set()
        while queue:
            kind, url = queue.pop(0)
            if url.startswith("data:") or url in seen:
                continue
            seen.add(url)
            parts = urlsplit(url)
            if parts.netloc and parts.netloc != "localhost":
                found.append((f"{url} (EXTERNAL, not counted)", 0))
                continue
            local = parts.path + (f"?{parts.query}" if parts.query else "")
            mime, _, served = self.size(local)
            found.append((local, served))
            if kind == "css" or mime == "text/css":
                css = self.client.get(local)
                text = css.get_data(as_text=True)
                css.close()
                for a, b in CSS_URL.findall(text):
                    queue.append(("css" if b else "url", urljoin(url, a or b)))
        return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logo", help="a clinic logo (PNG, JPEG or SVG) to include, as SCREENING_CLINIC_LOGO would")
    parser.add_argument("--level", type=int, default=6, help="gzip level (default 6)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        extra = {"CLINIC_LOGO": args.logo} if args.logo else {}
        app = make_app(Path(tmp) / "bench.db", **extra)
        client = app.test_client()
        assets = Assets(client, args.level)
        answers = typical_answers()
        rows = []

        def measure(label: str, url: str) -> str:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code, response.location)
            html = response.get_data()
            found = assets.of_page("http://localhost" + url, response.get_data(as_text=True))
            rows.append((label, url, len(html), gz(html, args.level), found))
            return response.get_data(as_text=True)

        html = measure("start", "/")
        response = client.post("/start", data={"csrf_token": csrf_token(html), "action": "start"})
        assert response.status_code == 302, response.status_code
        for page in qd.PAGES:
            html = measure(f"q/{page.id}", f"/q/{page.id}")
            response = client.post(f"/q/{page.id}", data={"csrf_token": csrf_token(html),
                                                          **page_data(page, answers)})
            assert response.status_code == 302, (page.id, response.status_code)
        measure("check", "/check")
        html = measure("declaration", "/declaration")
        response = client.post("/declaration", data={"csrf_token": csrf_token(html), "confirm": "y",
                                                     "signature": answers["full_name"]})
        assert response.status_code == 302 and response.location.endswith("/done"), response.status_code
        measure("done", "/done")

    print(f"page weight, gzip level {args.level} for HTML and text assets; first visit = page + every asset "
          f"(nothing cached){'; logo ' + args.logo if args.logo else '; no clinic logo configured'}")
    print()
    print("assets (served bytes: gzipped if text):")
    for url, (mime, raw, served) in sorted(assets.sizes.items()):
        print(f"  {url:32} {mime:24} {raw:8,d} raw {served:8,d} served")
    print()
    print(f"  {'page':24} {'HTML':>8} {'HTML gz':>8} {'ratio':>6} {'assets':>8} {'first visit':>12}")
    totals = []
    for label, url, raw, packed, found in rows:
        asset_bytes = sum(n for _, n in found)
        total = packed + asset_bytes
        totals.append((total, label))
        mark = "" if total <= TARGET_BYTES else "  over"
        print(f"  {label:24} {raw:8,d} {packed:8,d} {raw / packed:5.1f}x {asset_bytes:8,d} {total:12,d}{mark}")
    print(f"  ({len(rows)} pages; every page references: "
          f"{', '.join(sorted({u for *_, found in rows for u, _ in found}))})")
    biggest, which = max(totals)
    html_max = max(rows, key=lambda r: r[2])
    print()
    print(f"largest HTML: {html_max[0]} {html_max[2]:,d} bytes ({html_max[3]:,d} gzipped)")
    print(f"verdict: largest first visit {biggest:,d} bytes ({biggest / 1024:.1f} KB, {which}) vs target "
          f"<= {TARGET_BYTES:,d} bytes (20 KB): {'MET' if biggest <= TARGET_BYTES else 'MISSED'}"
          f" ({100 * biggest / TARGET_BYTES:.0f} % of budget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

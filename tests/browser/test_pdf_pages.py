"""The practitioner's PDF as a person sees it: rendered to PNG page by page with poppler's pdftoppm.

A submission is made over HTTP against the live server, its PDF is produced by the command a person
would run (``flask --app wsgi screening pdf REF -o FILE``, same database and settings), and each page is
rendered to an image (saved to tests/artifacts/browser/pdf/). No page may be blank, the images must match
the PDF's page count, and the PDF must carry its structure tags, its language and the "marked" flag.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from PIL import Image
from pypdf import PdfReader

from screening import questions as qd
from screening.display import format_answer
from screening.rules import asked_ids

MIN_INK = 0.003  # the share of the body's pixels (running header and footer left out) darker than light grey


def ink(png) -> float:
    """Return the share of pixels darker than light grey between the running header and footer."""
    with Image.open(png) as image:
        grey = image.convert("L")
        body = grey.crop((0, int(grey.height * 0.04), grey.width, int(grey.height * 0.9)))
        histogram = body.histogram()
        return sum(histogram[:200]) / (body.width * body.height)


def structure_types(node, found: set, depth: int = 0) -> None:
    """Collect the structure types (/S) below a structure element."""
    if depth > 60:
        return
    node = node.get_object()
    if isinstance(node, list):
        for kid in node:
            structure_types(kid, found, depth + 1)
        return
    if not hasattr(node, "get"):
        return
    if "/S" in node:
        found.add(str(node["/S"]))
    if "/K" in node:
        structure_types(node["/K"], found, depth + 1)


@pytest.fixture
def pdftoppm():
    path = shutil.which("pdftoppm")
    if path is None:
        import os

        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail("pdftoppm is missing (apt-get install poppler-utils); CI=true, so this fails")
        pytest.skip("pdftoppm is missing: apt-get install poppler-utils")
    return path


def test_pdf_pages_read_as_a_document(server, playwright_driver, over_http, answers, artifacts, tmp_path, pdftoppm):
    request = playwright_driver.request.new_context(base_url=server.url)
    try:
        full = answers(microneedling=True)
        reference = over_http(request, full, sign=True)
    finally:
        request.dispose()
    pdf = tmp_path / f"{reference}.pdf"
    server.flask("screening", "pdf", reference, "-o", str(pdf))

    reader = PdfReader(pdf)
    pages = len(reader.pages)
    assert 2 <= pages <= 4, f"{pages} pages: a typical report fits on 4"
    rendered = tmp_path / "png"
    rendered.mkdir()
    subprocess.run([pdftoppm, "-r", "72", "-png", str(pdf), str(rendered / "page")], check=True, timeout=120)
    images = sorted(rendered.glob("page-*.png"), key=lambda p: int(re.search(r"-(\d+)\.png$", p.name).group(1)))
    out = artifacts / "pdf"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(rendered, out)
    assert len(images) == pages, f"{len(images)} images for a PDF of {pages} pages"
    for number, png in enumerate(images, 1):
        share = ink(png)
        assert share >= MIN_INK, f"page {number} of {pages} is blank or nearly ({share:.4%} ink)"
        text = reader.pages[number - 1].extract_text()
        assert f"Page {number} of {pages}" in " ".join(text.split()), f"page {number} lacks 'Page {number} of {pages}'"
        # A page separated from the others still says whose it is.
        for shown in (full["full_name"], "born 27 March 1990", f"Reference {reference}"):
            assert shown in " ".join(text.split()), f"page {number} lacks {shown!r}"

    root = reader.trailer["/Root"]
    assert "/StructTreeRoot" in root, "the PDF is not tagged"
    assert bool(root.get("/MarkInfo", {}).get("/Marked", False)), "the PDF is not marked as tagged (/MarkInfo /Marked)"
    assert str(root.get("/Lang", "")).startswith("en"), f"the PDF's language is {root.get('/Lang')!r}"
    found: set[str] = set()
    structure_types(root["/StructTreeRoot"], found)
    for wanted in ("/H1", "/P"):
        assert wanted in found, f"no {wanted} in the structure tree ({sorted(found)})"
    # It is the client's record: the name, the reference and the deferral are on it.
    everything = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    for shown in (full["full_name"], reference, "DEFER"):
        assert shown in everything, shown
    # Nothing the full report said is lost: every asked question with its answer, every follow-up not asked.
    squashed = re.sub(r"\s+", "", everything)
    asked = set(asked_ids(full))
    for q in qd.QUESTIONS:
        assert re.sub(r"\s+", "", q.label) in squashed, q.id
        if q.id in asked:
            assert re.sub(r"\s+", "", format_answer(q, full.get(q.id))) in squashed, q.id

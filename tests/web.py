"""Drive the questionnaire through the Flask test client, as a browser would post it."""

from __future__ import annotations

import re

from screening import questions as qd

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(html: str) -> str:
    """Return the CSRF token of a rendered form."""
    match = CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def _date_parts(prefix: str, value: str) -> dict:
    if value == qd.UNKNOWN:
        return {f"{prefix}-unknown": "y"}
    parts = value.split("-")
    out = {f"{prefix}-year": parts[0], f"{prefix}-month": str(int(parts[1]))}
    if len(parts) == 3:
        out[f"{prefix}-day"] = str(int(parts[2]))
    return out


def _field_data(q: qd.Question, name: str, value) -> dict:
    if q.type == qd.DATE:
        return _date_parts(name, value)
    if q.type == qd.GROUP:
        out = {}
        for i, item in enumerate(value):
            for f in q.fields:
                if f.id in item:
                    out.update(_field_data(f, f"{name}-{i}-{f.id}", item[f.id]))
        return out
    return {name: value}


def page_data(page: qd.Page, answers: dict) -> dict:
    """Return the form post of one page for ``answers`` (only the questions it asks)."""
    data: dict = {}
    for q in qd.page_questions(page):
        if q.id in answers:
            data.update(_field_data(q, q.id, answers[q.id]))
    return data


def start(client) -> None:
    """Open the start page and start a draft."""
    response = client.get("/")
    response = client.post("/start", data={"csrf_token": csrf_token(response.text), "action": "start"})
    assert response.status_code == 302


def post_page(client, page_id: str, data: dict, query: str = ""):
    """GET a page, then POST ``data`` to it with its CSRF token; return the POST's response."""
    response = client.get(f"/q/{page_id}{query}")
    assert response.status_code == 200, (page_id, response.status_code)
    return client.post(f"/q/{page_id}{query}", data={"csrf_token": csrf_token(response.text), **data})


def answer_all(client, answers: dict) -> None:
    """Answer every page from ``answers``; each page must be accepted."""
    for page in qd.PAGES:
        response = post_page(client, page.id, page_data(page, answers))
        assert response.status_code == 302, (page.id, re.findall(r'<li><a href="#[^"]+">([^<]+)</a>', response.text))


def sign_and_send(client, name: str):
    """Check answers, sign the declaration and send; return the final response."""
    assert client.get("/check").status_code == 200
    response = client.get("/declaration")
    return client.post("/declaration", data={"csrf_token": csrf_token(response.text), "confirm": "y",
                                              "signature": name})


def complete(client, answers: dict) -> str:
    """Complete the whole questionnaire; return the reference shown on the confirmation page."""
    start(client)
    answer_all(client, answers)
    response = sign_and_send(client, answers["full_name"])
    assert response.status_code == 302 and response.location.endswith("/done"), response.status_code
    done = client.get("/done")
    match = re.search(r'class="reference">([A-Z0-9-]+)<', done.text)
    assert match, "no reference on the confirmation page"
    return match.group(1)

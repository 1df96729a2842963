"""The checks themselves: axe-core really runs (with JavaScript on, and on the mirror used for pages shown
without it) and reports a violation planted on purpose; a page without visible focus is caught."""

from __future__ import annotations

import pytest

BROKEN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Broken – Test Clinic</title></head>
<body><main><h1>Broken</h1><form><input id="nameless" type="text"><button id="go">Go</button></form>
<style>#go:focus { outline: none; box-shadow: none; }</style></main></body></html>"""


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_axe_reports_a_planted_violation(js, open_client):
    client = open_client(f"harness-{'js' if js else 'no-js'}", "mouse", js=js)
    page = client.page
    page.route("**/harness-broken", lambda route: route.fulfill(status=200, content_type="text/html; charset=utf-8", body=BROKEN))
    page.goto("/harness-broken")
    client.look("broken")
    ids = {v["id"] for _, _, v in client.violations}
    assert "label" in ids, ids
    if js:
        with pytest.raises(AssertionError, match="no visible focus"):
            client.tab_to("#go")

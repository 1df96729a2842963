"""Reflow and text size: at 320 CSS pixels wide (WCAG 1.4.10) and with the text at 200% on a phone
(WCAG 1.4.4), no page scrolls sideways and no control, label or text is pushed off screen or cut off.

The answers are put in over HTTP (sharing the browser's cookies), then every page is opened in the
browser: the start page, each question page with its follow-ups shown, error states, Check your answers,
the declaration and the confirmation. Each is also checked by axe-core and saved as a screenshot.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from screening import questions as qd

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
SETTINGS = [
    # WCAG 1.4.10: content reflows at 320 CSS px.
    pytest.param("320px", {"viewport": {"width": 320, "height": 640}}, None, id="320px"),
    # WCAG 1.4.4: text at 200%, on a desktop screen.
    pytest.param("desktop-text-200pc", {"viewport": {"width": 1280, "height": 900}}, "200%", id="desktop-text-200pc"),
    # The same on a phone (Android's largest font scale): long words in big headings and legends
    # ("microneedling", "methaemoglobinaemia", "pseudocholinesterase") cannot wrap and push the page
    # sideways until the style sheet lets them break.
    pytest.param("phone-text-200pc", PHONE, "200%", id="phone-text-200pc"),
]


@pytest.mark.parametrize(("setting", "options", "text_size"), SETTINGS)
def test_every_page_reflows(setting, options, text_size, open_client, over_http, answers):
    client = open_client(f"reflow-{setting}", "mouse", **options)
    client.text_size = text_size
    client.axe = setting == "320px"  # the journeys run axe on every page at 390, 800 and 1280 px already
    page = client.page
    full = answers(microneedling=True)
    over_http(page.context.request, full)

    page.goto("/")
    client.look("start-continue")
    for page_def in qd.PAGES:
        page.goto(f"/q/{page_def.id}")
        client.look(f"q-{page_def.id}")
    # Follow-ups are open where the answers need them.
    page.goto("/q/isotretinoin")
    expect(page.locator("#conditional-isotretinoin_last_dose_date")).to_be_visible()
    page.goto("/q/microneedling")
    expect(page.locator("#conditional-last_microneedling")).to_be_visible()

    page.goto("/q/about-you")
    client.text("email", "not an email")
    client.text("phone", "call me")
    client.button("Continue")
    client.look("q-about-you-error", error=True)

    page.goto("/check")
    client.look("check")
    page.goto("/declaration")
    client.look("declaration")
    client.button("Sign and send")
    client.look("declaration-error", error=True)
    client.tick_box("confirm")
    client.text("signature", full["full_name"])
    client.button("Sign and send")
    expect(page).to_have_url(re.compile(r"/done$"))
    client.look("done")
    client.assert_accessible()

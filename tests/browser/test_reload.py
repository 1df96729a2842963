"""What a client types on a question page survives a reload until it is sent (issue 12, item 9); never on a
kiosk, and nothing is kept once the questionnaire is sent."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from screening import questions as qd

def test_a_reload_keeps_what_was_typed_until_it_is_sent(server, open_client, answers):
    client = open_client("reload", "mouse", viewport={"width": 1280, "height": 900})
    page = client.page
    page.goto(server.url + "/")
    client.start()
    page.fill("#full_name", "Rita Reload")
    page.fill("#dob-day", "27")
    page.fill("#email", "rita@example.org")
    page.reload()
    expect(page.locator("#full_name")).to_have_value("Rita Reload")
    expect(page.locator("#dob-day")).to_have_value("27")
    expect(page.locator("#email")).to_have_value("rita@example.org")
    expect(page.get_by_role("status")).to_contain_text("before it was reloaded is back")

    # A follow-up that was open comes back open, with its answer.
    client.fill(qd.PAGE_BY_ID["about-you"], answers(full_name="Rita Reload"))
    client.button("Continue")
    client.fill(qd.PAGE_BY_ID["appointment"], answers())
    client.button("Continue")
    client.fill(qd.PAGE_BY_ID["pregnancy"], answers())
    client.button("Continue")
    expect(page).to_have_url(re.compile(r"/q/isotretinoin$"))
    page.check("#isotretinoin_last_12m-0")
    page.check("input[name=isotretinoin_current][value=no]")
    page.fill("#isotretinoin_last_dose_date-year", "2026")
    page.reload()
    expect(page.locator("input[name=isotretinoin_current][value=no]")).to_be_checked()
    expect(page.locator("#conditional-isotretinoin_last_dose_date")).to_be_visible()
    expect(page.locator("#isotretinoin_last_dose_date-year")).to_have_value("2026")

    # Once a page is sent and the next one loads, the browser keeps nothing of it.
    page.go_back()  # back to the pregnancy page, sent earlier: the server's answers, no notice
    expect(page.get_by_role("status")).to_have_count(0)
    kept = page.evaluate("() => Object.keys(sessionStorage).filter(k => k.startsWith('typed:'))")
    assert kept == ["typed:isotretinoin"], kept


def answer_every_page(client, given: dict) -> None:
    """Answer and send every question page, landing on Check your answers."""
    for page_def in qd.PAGES:
        client.fill(page_def, given)
        client.button("Continue")
    expect(client.page).to_have_url(re.compile(r"/check$"))


def test_nothing_is_kept_in_the_browser_after_sending(server, open_client, answers):
    client = open_client("reload-sent", "mouse", viewport={"width": 1280, "height": 900})
    page = client.page
    page.goto(server.url + "/")
    client.start()
    answer_every_page(client, answers())
    assert page.evaluate("() => Object.keys(sessionStorage).filter(k => k.startsWith('typed:'))") == []


def test_the_pages_added_for_newcomers_are_accessible(server, open_client, answers):
    """The under-18 notice, the page after stopping, Back after sending and the accessibility statement:
    axe-core finds nothing, on a phone."""
    client = open_client("newcomer-pages", "touch", viewport={"width": 390, "height": 844}, is_mobile=True,
                         has_touch=True)
    page = client.page
    page.goto(server.url + "/accessibility")
    client.look("accessibility-statement")
    page.goto(server.url + "/")
    client.start()
    young = answers(dob="2010-01-01")
    client.fill(qd.PAGE_BY_ID["about-you"], young)
    client.button("Continue")
    client.fill(qd.PAGE_BY_ID["appointment"], young)
    client.button("Continue")
    expect(page).to_have_url(re.compile(r"/q/under-18\?next=pregnancy$"))
    client.look("under-18")
    client.button("Stop and delete my answers")
    client.look("stopped")
    expect(page.locator("h1")).to_have_text("Your answers have been deleted")

    page.goto(server.url + "/")
    client.start()
    given = answers()
    answer_every_page(client, given)
    client.link("Continue to declaration")
    client.tick_box("confirm")
    client.text("signature", given["full_name"])
    client.button("Sign and send")
    reference = page.locator(".reference").inner_text().strip()
    page.go_back()
    page.reload()
    client.look("already-sent")
    expect(page.locator(".reference")).to_have_text(reference)
    client.assert_accessible()

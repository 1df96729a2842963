"""Three clients complete the whole questionnaire in Chromium: on a phone by touch, by keyboard alone
at desktop width, and with JavaScript off. Each meets validation errors and fixes them through the error
summary, reveals and answers follow-ups, changes an answer from Check your answers, signs, and gets a
reference; the stored submission is then read from the database. Every page and every error state is
checked with axe-core and saved as a screenshot (tests/artifacts/browser/<journey>/).
"""

from __future__ import annotations

import datetime as dt

import re

from playwright.sync_api import expect

from screening import questions as qd
from screening.config import ROOT
from screening.rules import evaluate, load_rules

NEW_PHONE = "07700 900456"

_FOLLOW_UP_PLACED = """([parent, child, js]) => {
  const problems = [];
  const block = document.getElementById('conditional-' + child);
  if (!block) return ['no follow-up block for ' + child];
  const inputs = [...document.querySelectorAll(`input[name="${parent}"]`)];
  const trigger = inputs[0].closest('fieldset');
  let before = block.previousElementSibling;
  while (before && before.matches(`.conditional[data-parent="${parent}"]`)) before = before.previousElementSibling;
  const wanted = block.dataset.values.split(' ');
  if (inputs[0].type === 'radio' && wanted.length === 1) {
    // GOV.UK's conditional reveal: right under the one answer that needs it, not under the last option.
    const option = inputs.find(i => i.value === wanted[0]).closest('.option');
    if (before !== option) problems.push(`${child} does not come right after the answer ${parent}=${wanted[0]}`);
  } else if (before !== trigger) problems.push(`${child} does not come right after the question ${parent} in the page`);
  if (js) {
    for (const input of inputs) {
      const controls = (input.getAttribute('aria-controls') || '').split(/\\s+/);
      if (wanted.includes(input.value) && !controls.includes(block.id))
        problems.push(`the answer ${parent}=${input.value} reveals ${block.id} but its aria-controls is "${controls.join(' ')}"`);
    }
  }
  return problems;
}"""


def expected(answers: dict):
    """Return what the rules say about ``answers``."""
    return evaluate(load_rules(ROOT / "rules.yaml"), answers, answered_on=dt.date.today())


def check_follow_up(client, parent: str, child: str) -> None:
    problems = client.page.evaluate(_FOLLOW_UP_PLACED, [parent, child, client.js])
    assert not problems, "; ".join(problems)


def about_you_with_a_mistake(client, answers: dict) -> None:
    """Give an email address without a domain, meet the error, fix it from the summary."""
    page_def = qd.PAGE_BY_ID["about-you"]
    client.look("q-about-you")
    if client.how == "keyboard":
        # The first Tab reaches the skip link, which takes the focus past the header to the main content.
        page = client.page
        client.press("Tab")
        expect(page.locator(".skip-link")).to_be_focused()
        expect(page.locator(".skip-link")).to_be_in_viewport()
        client.press("Enter")
        expect(page.locator("main")).to_be_focused()
        # Shift+Tab goes back the way Tab came, and nothing typed is lost.
        client.text("full_name", answers["full_name"])
        client.tab_to("[id='dob-day']")
        client.tab_to("[id='full_name']", backwards=True)
        expect(page.locator("#full_name")).to_have_value(answers["full_name"])
    client.fill(page_def, {**answers, "email": "ann@example"})
    client.button("Continue")
    expect(client.page).to_have_url(re.compile(r"/q/about-you$"))
    client.look("q-about-you-error", error=True)
    assert client.page.locator("#email").get_attribute("aria-invalid") == "true"
    # What was typed is still there.
    expect(client.page.locator("#full_name")).to_have_value(answers["full_name"])
    field = client.fix_through_summary("Enter an email address in the correct format")
    assert field == "email"
    client.text("email", answers["email"])
    client.button("Continue")


def isotretinoin_with_a_follow_up(client, answers: dict) -> None:
    """Reveal 'Are you taking it now?' and then the date; forget the date; fix it from the summary."""
    page = client.page
    page_def = qd.PAGE_BY_ID["isotretinoin"]
    now_block = page.locator("#conditional-isotretinoin_current")
    date_block = page.locator("#conditional-isotretinoin_last_dose_date")
    end_block = page.locator("#conditional-isotretinoin_planned_end_date")
    if client.js:
        expect(now_block).to_be_hidden()
        client.look("q-isotretinoin")
        client.radio("isotretinoin_last_12m", "yes")
        expect(now_block).to_be_visible()
        check_follow_up(client, "isotretinoin_last_12m", "isotretinoin_current")
        client.radio("isotretinoin_current", "no")
        expect(date_block).to_be_visible()
        expect(end_block).to_be_hidden()
        check_follow_up(client, "isotretinoin_current", "isotretinoin_last_dose_date")
        check_follow_up(client, "isotretinoin_current", "isotretinoin_planned_end_date")
        client.look("q-isotretinoin-revealed")
    else:
        # Without JavaScript every follow-up is on the page, each saying when to answer it.
        for block in (now_block, date_block, end_block):
            expect(block).to_be_visible()
            expect(block.locator(":scope > .conditional-hint")).to_be_visible()
        expect(date_block.locator(":scope > .conditional-hint")).to_have_text("Answer this if you answered ‘No’ above.")
        check_follow_up(client, "isotretinoin_last_12m", "isotretinoin_current")
        check_follow_up(client, "isotretinoin_current", "isotretinoin_last_dose_date")
        client.look("q-isotretinoin")
    without_date = {k: v for k, v in answers.items() if k != "isotretinoin_last_dose_date"}
    client.fill(page_def, without_date)
    client.button("Continue")
    expect(page).to_have_url(re.compile(r"/q/isotretinoin$"))
    # The follow-up stays open after the error, with what was chosen.
    expect(date_block).to_be_visible()
    expect(page.locator("input[name=isotretinoin_current][value=no]")).to_be_checked()
    client.look("q-isotretinoin-error", error=True)
    field = client.fix_through_summary("Enter the date of your last isotretinoin tablet")
    assert field == "isotretinoin_last_dose_date-day"
    client.fill(page_def, {"isotretinoin_last_dose_date": answers["isotretinoin_last_dose_date"]})
    client.button("Continue")


def microneedling_group(client, answers: dict) -> None:
    """Answer yes, and describe the session in the group that appears."""
    page_def = qd.PAGE_BY_ID["microneedling"]
    group = client.page.locator("#conditional-last_microneedling")
    if client.js:
        expect(group).to_be_hidden()
    client.radio("microneedling_3m", "yes")
    expect(group).to_be_visible()
    check_follow_up(client, "microneedling_3m", "last_microneedling")
    client.look("q-microneedling-revealed")
    client.fill(page_def, answers)
    client.button("Continue")


def change_from_check(client, answers: dict) -> None:
    """Change the phone number from Check your answers and come straight back to it."""
    page = client.page
    client.link("Change Phone number")
    expect(page).to_have_url(re.compile(r"/q/about-you\?change=1#q-phone$"))
    client.look("q-about-you-change")
    expect(page.locator("#phone")).to_have_value(answers["phone"])
    client.text("phone", NEW_PHONE)
    client.button("Save and continue")
    expect(page).to_have_url(re.compile(r"/check#full_name$"))
    expect(page.locator(".summary-row", has_text="Phone number").locator("dd").first).to_have_text(NEW_PHONE)


def declaration_with_a_mistake(client, answers: dict, mistake: str) -> None:
    page = client.page
    client.look("declaration")
    if mistake == "wrong-name":
        client.tick_box("confirm")
        client.text("signature", "Ann Exampel")
        message, field_id = "Type your full name as you gave it on the first page", "signature"
    else:
        client.text("signature", answers["full_name"])
        message, field_id = "Confirm that your answers are true and complete", "confirm"
    client.button("Sign and send")
    expect(page).to_have_url(re.compile(r"/declaration$"))
    client.look("declaration-error", error=True)
    assert client.fix_through_summary(message) == field_id
    if mistake == "wrong-name":
        client.text("signature", answers["full_name"])
    else:
        client.tick_box("confirm")
    client.button("Sign and send")


def run_journey(client, server, answers: dict, *, mistake: str) -> None:
    page = client.page
    page.goto("/")
    client.look("start")
    client.start()
    for page_def in qd.PAGES:
        expect(page).to_have_url(re.compile(rf"/q/{page_def.id}$"))
        if page_def.id == "about-you":
            about_you_with_a_mistake(client, answers)
        elif page_def.id == "isotretinoin":
            isotretinoin_with_a_follow_up(client, answers)
        elif page_def.id == "microneedling" and "last_microneedling" in answers:
            client.look("q-microneedling")
            microneedling_group(client, answers)
        else:
            client.look(f"q-{page_def.id}")
            client.fill(page_def, answers)
            client.button("Continue")
    expect(page).to_have_url(re.compile(r"/check$"))
    client.look("check")
    change_from_check(client, answers)
    client.look("check-after-change")
    client.link("Continue to declaration")
    declaration_with_a_mistake(client, answers, mistake)

    expect(page).to_have_url(re.compile(r"/done(#[a-z_]+)?$"))
    client.look("done")
    reference = page.locator(".reference").inner_text().strip()
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", reference), reference
    # The confirmation echoes no answer back.
    text = page.locator("body").inner_text()
    for echoed in (answers["full_name"], answers["email"], NEW_PHONE, "isotretinoin", "Isotretinoin"):
        assert echoed not in text

    stored = server.submission(reference)
    assert stored is not None, f"no submission {reference} in the database"
    final = {**answers, "phone": NEW_PHONE}
    assert stored["outcome"] == expected(final).outcome == "DEFER"
    flags = {flag["id"] for flag in stored["result"]["flags"]}
    assert "isotretinoin" in flags, flags
    assert stored["answers"]["phone"] == NEW_PHONE
    assert stored["answers"]["isotretinoin_last_dose_date"] == answers["isotretinoin_last_dose_date"]
    assert stored["signature_name"] == answers["full_name"]
    if "last_microneedling" in answers:
        assert stored["answers"]["last_microneedling"] == answers["last_microneedling"]

    client.assert_titles_distinct()
    client.assert_accessible()


def test_phone_by_touch(server, open_client, answers):
    """A client on a phone (390 x 844, touch) completes the questionnaire."""
    client = open_client("phone-390", "touch", viewport={"width": 390, "height": 844}, is_mobile=True,
                         has_touch=True)
    run_journey(client, server, answers(microneedling=True), mistake="wrong-name")


def test_keyboard_only(server, open_client, answers):
    """A client using only the keyboard (Tab, Shift+Tab, arrows, Space, Enter) completes it, seeing
    where the focus is at every step."""
    client = open_client("desktop-1280-keyboard", "keyboard", viewport={"width": 1280, "height": 900})
    run_journey(client, server, answers(microneedling=True), mistake="no-confirm")
    assert client.focus_stops > 100, client.focus_stops


def test_javascript_off(server, open_client, answers):
    """With JavaScript off, every follow-up is on the page and still works; the server decides."""
    client = open_client("tablet-800-no-js", "mouse", js=False, viewport={"width": 800, "height": 1000})
    run_journey(client, server, answers(), mistake="no-confirm")
    assert client.page.evaluate("() => document.documentElement.classList.contains('js')") is False

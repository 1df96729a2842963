"""Staff pages on a phone and on a desk (issue 15): the practitioners' list shows every column, the outcome above
all, at 390 and 320 CSS px (WCAG 1.4.10: each row stacks, each cell labelled by its column); the audit trail too;
and every staff page has the same width on a wide screen.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
NARROW = {"viewport": {"width": 320, "height": 640}}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}


def sign_in(client, email: str, password: str, *, lands_on: str) -> None:
    page = client.page
    page.goto("/staff/login")
    client.text("email", email)
    client.text("password", password)
    client.button("Sign in")
    expect(page).to_have_url(re.compile(lands_on))


def inside(page, locator) -> None:
    """Fail unless ``locator`` is shown whole, within the width of the screen (no sideways scrolling needed)."""
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    width = page.viewport_size["width"]
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (box, width)


@pytest.mark.parametrize("size", [PHONE, NARROW], ids=["390px", "320px"])
def test_the_practitioners_list_shows_the_outcome_on_a_phone(size, server, open_client, staff_user, over_http,
                                                            playwright_driver, answers):
    request = playwright_driver.request.new_context(base_url=server.url)
    try:
        full = answers(full_name="Oona Phone", email="oona.phone@example.org")
        reference = over_http(request, full, sign=True)
    finally:
        request.dispose()
    width = size["viewport"]["width"]
    email, password = staff_user(server, f"pia.{width}@example.org", "practitioner", "Pia Phone")
    client = open_client(f"staff-list-{width}", "touch" if size is PHONE else "mouse", **size)
    page = client.page
    sign_in(client, email, password, lands_on=r"/staff/submissions$")
    page.goto("/staff/submissions?date=any")
    client.look(f"submissions-any-date-{width}", title="Submissions")
    row = page.locator("table.submissions-table tbody tr").filter(has_text=reference)
    outcome = row.locator("td[data-label='Outcome'] .outcome-badge")
    inside(page, outcome)
    expect(outcome).to_contain_text(re.compile("defer", re.IGNORECASE))
    # Each cell says which column it is, since the header row is not shown above it.
    label = row.locator("td[data-label='Outcome']").evaluate("td => getComputedStyle(td, '::before').content")
    assert label == '"Outcome: "'
    for column in ("Date of birth", "Appointment", "Status"):
        inside(page, row.locator(f"td[data-label='{column}']"))
    inside(page, row.get_by_role("link", name="Oona Phone"))
    scroll = page.locator(".table-scroll").evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert scroll[0] <= scroll[1], f"the table scrolls sideways inside its box: {scroll}"
    client.assert_accessible()


def test_the_audit_trail_reads_on_a_phone(server, open_client, staff_user):
    email, password = staff_user(server, "ada.phone@example.org", "admin", "Ada Phone")
    client = open_client("audit-390", "touch", **PHONE)
    page = client.page
    sign_in(client, email, password, lands_on=r"/staff/admin/audit$")
    client.look("audit-390", title="Audit trail")
    first = page.locator("table.audit-table tbody tr").first
    for column in ("When", "Who", "What", "Address"):
        inside(page, first.locator(f"td[data-label='{column}']"))
    expect(first.locator("td[data-label='What']")).to_contain_text("Signed in")
    page.goto("/staff/admin/audit?date_from=yesterday")
    client.look("audit-390-error", error=True, title="Audit trail")
    client.assert_accessible()


def test_every_staff_page_has_the_same_width(server, open_client, staff_user):
    email, password = staff_user(server, "wide.admin@example.org", "admin", "Wade Wide")
    server.flask("screening", "create-user", "wide.prac@example.org", "--role", "practitioner", "--role", "desk",
                 "--name", "Wren Wide", input="correct horse battery staple\ncorrect horse battery staple\n")
    client = open_client("staff-widths-1280", "mouse", **DESKTOP)
    page = client.page
    sign_in(client, "wide.prac@example.org", "correct horse battery staple", lands_on=r"/staff/submissions$")
    widths = {}
    for path in ("/staff/submissions", "/staff/desk", "/staff/appointments", "/staff/login"):
        page.goto(path)
        widths[path] = page.locator("main").bounding_box()["width"]
    admin = open_client("staff-widths-admin-1280", "mouse", **DESKTOP)
    sign_in(admin, email, password, lands_on=r"/staff/admin/audit$")
    widths["/staff/admin/audit"] = admin.page.locator("main").bounding_box()["width"]
    admin.page.goto("/staff/admin/users")
    widths["/staff/admin/users"] = admin.page.locator("main").bounding_box()["width"]
    assert len(set(widths.values())) == 1, widths
    assert 900 <= widths["/staff/desk"] <= 1024, widths  # wider than the questionnaire's 42rem column

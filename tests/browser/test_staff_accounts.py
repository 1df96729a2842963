"""Staff accounts in Chromium (issue 15): an admin invites a practitioner, who sets a password through the emailed
link and signs in; someone who has forgotten their password asks for a link, sets a new one (with JavaScript off, by
keyboard) and the old one no longer works; the admin deactivates after a question naming the person, and
reactivates. The mail goes to a real SMTP server in this process; every page is checked with axe-core.
"""

from __future__ import annotations

import re
import urllib.parse

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import MAIL_BASE_URL, STAFF_PASSWORD, _server_errors, live_server_at, sending_mail_to
from tests.browser.test_invitation import html_of, text_of, wait_for_mail

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
BASE_URL = MAIL_BASE_URL
ADMIN = "ada.accounts@example.org"
LINK = re.compile(re.escape(BASE_URL) + r"(/staff/link/[A-Za-z0-9_-]+)")
NEW_PASSWORD = "plum orchard lantern seven"


@pytest.fixture(scope="module")
def accounts_server(tmp_path_factory, mail_server):
    """The app under gunicorn, sending mail at once to ``mail_server``; one admin, made on the command line."""
    url, _ = mail_server
    with live_server_at(tmp_path_factory.mktemp("accounts"), **sending_mail_to(url, "screening@clinic.test")) as server:
        server.flask("screening", "create-user", ADMIN, "--role", "admin", "--name", "Ada Admin",
                     input=f"{STAFF_PASSWORD}\n{STAFF_PASSWORD}\n")
        yield server


@pytest.fixture
def server(accounts_server):
    start = accounts_server.log_path.stat().st_size
    yield accounts_server
    with open(accounts_server.log_path, "rb") as log:
        log.seek(start)
        new = log.read().decode(errors="replace")
    assert not _server_errors(new), f"the server logged errors during this test:\n{new}"


def sign_in(client, email: str, password: str, *, lands_on: str) -> None:
    client.page.goto("/staff/login")
    client.look("sign-in")
    client.text("email", email)
    client.text("password", password)
    client.button("Sign in")
    expect(client.page).to_have_url(re.compile(lands_on))


def link_path(message) -> str:
    match = LINK.search(text_of(message))
    assert match and match.group(0) in html_of(message), text_of(message)
    return match.group(1)


def choose_password(client, label: str) -> None:
    """On the page the link led to: a common password is refused, then a good one is set."""
    page = client.page
    expect(page).to_have_url(re.compile(r"/staff/password/new$"))  # the token has left the address bar
    client.look(label)
    client.text("password", "Password1234")
    client.text("confirm", "Password1234")
    client.button(page.locator("button[type=submit]").inner_text().strip())
    client.look(f"{label}-common", error=True)
    expect(page.locator(".error-summary")).to_contain_text("on a list of common or leaked passwords")
    expect(page.locator("#password")).to_have_value("")  # a password is never sent back
    client.fix_through_summary("This password is on a list of common or leaked passwords; choose another")
    client.text("password", NEW_PASSWORD)
    client.text("confirm", NEW_PASSWORD)
    client.button(page.locator("button[type=submit]").inner_text().strip())
    expect(page).to_have_url(re.compile(r"/staff/password/done"))


def test_an_admin_invites_a_practitioner_who_sets_a_password_and_signs_in(server, mail_server, open_client):
    _, mailbox = mail_server
    admin = open_client("accounts-admin", "mouse", **DESKTOP)
    page = admin.page
    sign_in(admin, ADMIN, STAFF_PASSWORD, lands_on=r"/staff/admin/audit")
    page.goto("/staff/admin/users")
    admin.look("accounts")
    admin.link("Invite a member of staff")
    admin.look("invite")
    admin.text("name", "Pat Smith")
    admin.text("email", "pat smith at clinic")
    admin.button("Send the invitation")
    admin.look("invite-errors", error=True)
    expect(page.locator("#name")).to_have_value("Pat Smith")  # what was typed is kept
    admin.fix_through_summary("Enter an email address in the correct format, like name@example.com")
    admin.text("email", "pat.smith@example.org")
    admin.tick("roles", "practitioner")
    admin.button("Send the invitation")
    admin.look("invited")
    expect(page.locator(".notice")).to_contain_text("Pat Smith is invited")
    expect(page.locator("main")).to_contain_text("Invited, not set up yet")

    [invitation] = wait_for_mail(mailbox, "pat.smith@example.org")
    assert invitation["Subject"] == "Your staff account at Test Clinic"
    path = link_path(invitation)
    pat = open_client("accounts-invitee", "touch", **PHONE)
    pat.page.goto(path)
    choose_password(pat, "set-up")
    pat.look("ready")
    pat.page.goto(path)  # the link has been used
    pat.look("link-used")
    expect(pat.page.locator("h1")).to_have_text("This link no longer works")
    pat.link("sign in")
    pat.text("email", "pat.smith@example.org")
    pat.text("password", NEW_PASSWORD)
    pat.button("Sign in")
    expect(pat.page).to_have_url(re.compile(r"/staff/submissions$"))

    # The admin sees the account set up, deactivates it after a question that names Pat, then reactivates it.
    page.goto("/staff/admin/users")
    admin.look("accounts-after")
    admin.link("Manage Pat Smith (pat.smith@example.org)")
    admin.look("pat")
    admin.link("Deactivate this account")
    admin.look("deactivate")
    expect(page.locator("h1")).to_have_text("Deactivate Pat Smith (pat.smith@example.org)?")
    admin.button("Yes, deactivate Pat Smith")
    expect(page.locator(".notice")).to_contain_text("is deactivated and signed out everywhere")
    pat.page.goto("/staff/submissions")
    expect(pat.page).to_have_url(re.compile(r"/staff/login"))  # signed out everywhere
    admin.link("Manage Pat Smith (pat.smith@example.org)")
    admin.button("Reactivate this account")
    admin.look("reactivated")
    expect(page.locator(".notice")).to_contain_text("active again")
    admin.assert_accessible()
    pat.assert_accessible()


def test_a_forgotten_password_is_reset_by_keyboard_without_javascript(server, mail_server, open_client, staff_user):
    _, mailbox = mail_server
    email, old = staff_user(server, "dee.reset@example.org", "desk", "Dee Desk")
    client = open_client("accounts-reset", "keyboard", js=False, **DESKTOP)
    page = client.page
    page.goto("/staff/login")
    client.look("sign-in")
    client.link("Forgotten your password?")
    client.look("forgotten")
    client.button("Email me a link")
    client.look("forgotten-empty", error=True)
    client.fix_through_summary("Enter your email address")
    client.text("email", email)
    client.button("Email me a link")
    client.look("check-your-email")
    expect(page.locator("main")).to_contain_text(f"If {email} is the address of an active staff account here")

    [reset] = wait_for_mail(mailbox, email)
    assert reset["Subject"] == "Choose a new password for Test Clinic"
    path = link_path(reset)
    page.goto(path)
    assert urllib.parse.urlsplit(page.url).path == "/staff/password/new"
    choose_password(client, "new-password")
    client.look("changed")
    expect(page.locator("h1")).to_have_text("Your password is changed")
    notice = wait_for_mail(mailbox, email, 2)[-1]
    assert notice["Subject"] == "Your password at Test Clinic was changed"
    page.goto("/staff/login")
    client.text("email", email)
    client.text("password", old)
    client.button("Sign in")
    expect(page.locator(".error-summary")).to_contain_text("Email or password is incorrect")
    client.text("password", NEW_PASSWORD)
    client.button("Sign in")
    expect(page).to_have_url(re.compile(r"/staff/desk$"))
    client.assert_accessible()

"""Two-factor sign-in in Chromium (issue 15), on a server with the shipped setting (admins and practitioners must
have a second factor) reached as http://localhost:PORT (WebAuthn refuses an IP address as the relying party):

- a passkey registered at the first sign-in and then used to sign in, with Chromium's virtual authenticator
  (DevTools protocol WebAuthn.addVirtualAuthenticator), renamed and listed on the Security page;
- an authenticator app set up from the page's own key (the QR code is an inline SVG made by the server), a wrong
  code and a replayed code refused, the next code accepted, a recovery code accepted once only; with JavaScript
  on (a laptop) and off (a phone).
Every page is checked by Client.look (title, layout, axe-core).
"""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import live_server_at

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}
AUTHENTICATOR = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
                 "isUserVerified": True}


@pytest.fixture(scope="module")
def two_factor_server(tmp_path_factory):
    with live_server_at(tmp_path_factory.mktemp("two-factor"), host="localhost",
                        SCREENING_TWO_FACTOR_ROLES="admin,practitioner",
                        SCREENING_BASE_URL="http://localhost:{port}") as server:
        yield server


def password_step(client, email, password, lands_on):
    page = client.page
    page.goto("/staff/login")
    client.text("email", email)
    client.text("password", password)
    client.button("Sign in")
    expect(page).to_have_url(re.compile(lands_on))


def sign_out(client):
    client.button("Sign out")
    expect(client.page).to_have_url(re.compile(r"/staff/login\?signed_out=1$"))


def make_recovery_codes(client) -> list[str]:
    client.button("Make new recovery codes")
    client.look("recovery-codes-shown")
    codes = [c.strip() for c in client.page.locator("#recovery-codes code").all_inner_texts()]
    assert len(codes) == 10 and len(set(codes)) == 10
    return codes


def test_a_passkey_registered_at_first_sign_in_then_used_to_sign_in(two_factor_server, open_client, staff_user):
    email, password = staff_user(two_factor_server, "pat.passkey@example.org", "practitioner", "Pat Passkey")
    client = open_client("two-factor-passkey", "mouse", on=two_factor_server, **DESKTOP)
    page = client.page
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})["authenticatorId"]

    password_step(client, email, password, r"/staff/login/set-up$")
    client.look("set-up")
    page.goto("/staff/submissions")  # nothing of the staff area before the set-up is done
    expect(page).to_have_url(re.compile(r"/staff/login"))
    page.go_back()
    page.goto("/staff/login/set-up")
    client.text("passkey-name", "Pat's laptop")
    client.button("Add a passkey")
    expect(page).to_have_url(re.compile(r"/staff/account/security/recovery-codes\?first=1$"))
    client.look("first-recovery-codes")
    make_recovery_codes(client)
    client.link("I have kept them: continue")
    expect(page).to_have_url(re.compile(r"/staff/submissions"))
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(credentials) == 1
    count_after_registration = credentials[0]["signCount"]

    sign_out(client)
    password_step(client, email, password, r"/staff/login/two-factor$")
    client.look("second-step-passkey")
    client.button("Use a passkey")
    expect(page).to_have_url(re.compile(r"/staff/submissions"))
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert credentials[0]["signCount"] > count_after_registration  # the server checked and kept it

    page.goto("/staff/account/security")
    client.look("security")
    row = page.locator("table tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("th")).to_have_text("Pat's laptop")
    expect(row).not_to_contain_text("never")  # last used: just now
    page.locator("#rename-" + row.get_attribute("id").split("-")[1]).fill("Work laptop")
    client.button("Rename Pat's laptop")
    expect(page.locator("table tbody tr th")).to_have_text("Work laptop")
    # the only second factor of a practitioner cannot be removed
    client.button("Remove Work laptop")
    expect(page.locator("main")).to_contain_text("This is your only second factor")
    client.assert_accessible()


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_an_authenticator_app_wrong_and_replayed_codes_and_a_recovery_code_once(two_factor_server, open_client,
                                                                                 staff_user, js):
    email, password = staff_user(two_factor_server, f"ada.app.{'js' if js else 'nojs'}@example.org", "admin",
                                 "Ada App")
    # With JavaScript, a laptop and a mouse; without, a phone by touch (the narrowest layout)
    client = open_client(f"two-factor-app-{'js' if js else 'no-js'}", "mouse" if js else "touch", js=js,
                         on=two_factor_server, **(DESKTOP if js else PHONE))
    page = client.page
    password_step(client, email, password, r"/staff/login/set-up$")
    expect(page.locator(".qr-code svg")).to_be_visible()  # drawn by the server, inline
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    client.text("code", "000000" if totp.now() != "000000" else "111111")
    client.button("Confirm the code")
    client.look("set-up-wrong-code", error=True)
    first_code = totp.now()
    client.text("code", first_code)
    client.button("Confirm the code")
    expect(page).to_have_url(re.compile(r"/recovery-codes\?first=1$"))
    codes = make_recovery_codes(client)
    client.link("I have kept them: continue")
    expect(page).to_have_url(re.compile(r"/staff/admin/"))

    sign_out(client)
    password_step(client, email, password, r"/staff/login/two-factor$")
    client.look("second-step")
    client.text("code", first_code)  # the code the set-up used: refused however quickly it comes back
    client.button("Continue")
    client.look("second-step-replayed", error=True)
    expect(page.locator(".error-summary")).to_contain_text("That code is not right")
    client.text("code", totp.at(time.time() + 30))  # the next 30-second step: accepted (one step either side)
    client.button("Continue")
    expect(page).to_have_url(re.compile(r"/staff/admin/"))

    sign_out(client)
    password_step(client, email, password, r"/staff/login/two-factor$")
    client.text("code", codes[0])
    client.button("Continue")
    expect(page).to_have_url(re.compile(r"/staff/account/security$"))
    expect(page.locator(".notice").first).to_contain_text("You have 9 left")
    client.look("security-after-recovery-code")
    sign_out(client)
    password_step(client, email, password, r"/staff/login/two-factor$")
    client.text("code", codes[0])
    client.button("Continue")
    client.look("second-step-used-recovery-code", error=True)
    client.assert_accessible()

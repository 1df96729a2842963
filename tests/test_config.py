"""Settings: refused when unsafe, applied when given."""

import pytest

from screening import create_app
from screening.config import ConfigError, contrast, from_environ


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="SCREENING_SECRET_KEY"):
        create_app({"ENV": "production", "SECRET_KEY": None,
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}"})


def test_development_generates_and_keeps_a_secret_key(tmp_path):
    from screening.config import finish

    first = {**from_environ({}), "SQLALCHEMY_DATABASE_URI": "sqlite://"}
    finish(first, str(tmp_path / "instance"))
    key_file = tmp_path / "instance" / "secret_key"
    assert len(first["SECRET_KEY"]) == 64 and key_file.read_text() == first["SECRET_KEY"]
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    again = {**from_environ({}), "SQLALCHEMY_DATABASE_URI": "sqlite://"}
    finish(again, str(tmp_path / "instance"))
    assert again["SECRET_KEY"] == first["SECRET_KEY"]


@pytest.mark.parametrize("accent, ok", [("#1d5f8a", True), ("#000000", True), ("#ffcc00", False),
                                        ("#7fb3d5", False), ("blue", False)])
def test_accent_colour_must_keep_white_text_readable(accent, ok):
    settings = {"SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": "sqlite://", "CLINIC_ACCENT": accent}
    if ok:
        assert create_app(settings).config["CLINIC"]["accent"] == accent
    else:
        with pytest.raises(ConfigError, match="SCREENING_CLINIC_ACCENT"):
            create_app(settings)


def test_contrast_ratio_matches_wcag_examples():
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast("#767676", "#ffffff"), 2) == 4.54


def test_clinic_name_and_logo_are_shown(tmp_path):
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    app = create_app({"SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": "sqlite://", "CLINIC_NAME": "Skin & Co",
                      "CLINIC_LOGO": str(logo)})
    client = app.test_client()
    page = client.get("/").text
    assert "Skin &amp; Co" in page and 'src="/logo"' in page
    response = client.get("/logo")
    assert response.data == logo.read_bytes() and response.mimetype == "image/png"


def test_a_logo_that_is_not_an_image_is_refused(tmp_path):
    bad = tmp_path / "logo.exe"
    bad.write_bytes(b"MZ")
    with pytest.raises(ConfigError, match="SCREENING_CLINIC_LOGO"):
        create_app({"SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": "sqlite://", "CLINIC_LOGO": str(bad)})


def test_postgresql_urls_use_the_installed_driver():
    app = create_app({"SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": "postgresql://u@127.0.0.1/db"})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@127.0.0.1/db"


def test_environment_variables_are_read():
    settings = from_environ({"SCREENING_DATABASE_URL": "sqlite:///x.db", "SCREENING_DRAFT_LIFETIME_HOURS": "3",
                             "SCREENING_CLINIC_NAME": "A", "SCREENING_PDF_BACKGROUND": "0"})
    assert settings["SQLALCHEMY_DATABASE_URI"] == "sqlite:///x.db"
    assert settings["DRAFT_LIFETIME_HOURS"] == 3.0 and settings["CLINIC_NAME"] == "A"
    assert settings["PDF_BACKGROUND"] == "0" and "SECRET_KEY" not in settings


def test_a_broken_rules_file_stops_start_up(tmp_path):
    from screening.rules import RulesError

    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - id: x\n    severity: sometimes\n")
    with pytest.raises(RulesError) as exc:
        create_app({"SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": "sqlite://", "RULES_PATH": str(bad)})
    assert "rule 'x'" in str(exc.value) and ":3:" in str(exc.value)


@pytest.mark.parametrize("name", ["KIOSK_IDLE_SECONDS", "STAFF_IDLE_MINUTES", "STAFF_SESSION_HOURS",
                                  "DRAFT_LIFETIME_HOURS"])
def test_time_limits_must_be_positive(name):
    with pytest.raises(ConfigError, match=f"SCREENING_{name} must be above 0"):
        create_app({"SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": "sqlite://", name: 0})

"""Page language: ui_locales, then Accept-Language; catalogs complete and compiled."""

import io
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.conftest import start_login
from tests.conftest import submit_login

TRANSLATIONS = Path(__file__).resolve().parents[1] / "login_site" / "translations"


def test_accept_language_picks_french(client):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fr-FR,fr;q=0.9,en;q=0.5"
    page, state = start_login(client)
    html = page.get_data(as_text=True)
    assert '<html lang="fr">' in html and "Bienvenue" in html and "Mot de passe" in html
    response = submit_login(client, page, state, "alice@example.test", "nope")
    assert "E-mail ou mot de passe incorrect." in response.get_data(as_text=True)


def test_ui_locales_wins_over_accept_language(client):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    page, _ = start_login(client, ui_locales="fr-CA en")
    assert "Connectez-vous à Tenant One pour continuer vers web." in page.get_data(as_text=True)


def test_english_is_the_default(client):
    page, _ = start_login(client)
    assert '<html lang="en">' in page.get_data(as_text=True)


def test_error_pages_are_translated(client):
    response = client.get(
        "/authorize?client_id=nope", base_url="http://t1.test", headers={"Accept-Language": "fr"}
    )
    assert "Application inconnue" in response.get_data(as_text=True)


def test_every_message_is_translated_and_the_compiled_catalog_is_current():
    template = read_po((TRANSLATIONS / "messages.pot").open("rb"))
    for locale_dir in (p for p in TRANSLATIONS.iterdir() if p.is_dir()):
        po = read_po((locale_dir / "LC_MESSAGES" / "messages.po").open("rb"))
        ids = {m.id for m in template if m.id}
        translated = {m.id for m in po if m.id and m.string}
        assert ids <= translated, sorted(ids - translated)
        mo = read_mo(io.BytesIO((locale_dir / "LC_MESSAGES" / "messages.mo").read_bytes()))
        assert {m.id: m.string for m in mo if m.id} == {m.id: m.string for m in po if m.id}


def test_template_catalog_lists_every_marked_message(tmp_path):
    import subprocess
    import sys

    root = TRANSLATIONS.parents[1]
    out = tmp_path / "fresh.pot"
    subprocess.run(  # noqa: S603 - fixed arguments
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "_",
            "-k",
            "gettext",
            "-k",
            "N_",
            "--no-location",
            "-o",
            str(out),
            ".",
        ],
        cwd=root,
        check=True,
        capture_output=True,
    )
    fresh = {m.id for m in read_po(out.open("rb")) if m.id}
    committed = {m.id for m in read_po((TRANSLATIONS / "messages.pot").open("rb")) if m.id}
    assert fresh == committed, "run pybabel extract (see docs/i18n.md)"


def test_signup_page_renders_in_both_languages(client):
    for language, text in (
        ("en", "Special characters (e.g. !@#$%^&amp;*)"),
        ("fr", "Caractères spéciaux (par exemple !@#$%^&amp;*)"),
    ):
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
        page, _ = start_login(client, screen_hint="signup")
        assert page.status_code == 200 and text in page.get_data(as_text=True)

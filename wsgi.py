"""gunicorn entry point: ``gunicorn wsgi:app``."""

from login_site.app import create_app

app = create_app()

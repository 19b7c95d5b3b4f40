// esbuild entry (tests/widget/conftest.py): auth0-lock's CommonJS build as one browser script.
import Auth0Lock from "auth0-lock";

window.Auth0Lock = Auth0Lock;

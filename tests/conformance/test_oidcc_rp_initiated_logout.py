"""OpenID Foundation RP-Initiated Logout OP plan (``OIDCCRpInitiatedLogoutTestPlan``,
checklist A.3 and OI-03, LO-04…LO-07), one test per module, in the plan's order.

Each module logs in with a 128-character state (AbstractOIDCCRpInitiatedLogout), sends
the browser to the discovered ``end_session_endpoint`` with the ID token as
``id_token_hint``, ``post_logout_redirect_uri=https://app.test/bye`` (registered for
``web``) and a random ``state``, then changes one thing. Where the suite accepts "an error
page or a confirmation", compat §6 decides: an invalid request is a 400 page; a request
without a hint matching the session gets a confirmation page, and the user confirms.
In every case the RP's URL is never reached unless the request was valid.
"""

import json
import time

from joserfc import jwt
from joserfc.jwk import OctKey
from joserfc.jwk import RSAKey

from tests.conformance.rp import ISSUER
from tests.conformance.rp import POST_LOGOUT_REDIRECT_URI
from tests.conformance.rp import USER_INTERFACE_ERRORS
from tests.conformance.rp import WEB
from tests.conformance.rp import b64url
from tests.conformance.rp import callback_params
from tests.conformance.rp import code_flow
from tests.conformance.rp import confirm_if_asked
from tests.conformance.rp import discovery
from tests.conformance.rp import end_session
from tests.conformance.rp import error_page
from tests.conformance.rp import error_params
from tests.conformance.rp import forms_of
from tests.conformance.rp import jose_payload
from tests.conformance.rp import prompt_none
from tests.conformance.rp import random_state
from tests.conformance.rp import stays_on_op

COOKIE = "login_site_session"


def logged_in(browser):
    """The first authorization of every module."""
    return code_flow(browser, state_length=128)


def end_session_state() -> str:
    return random_state(32)  # CreateRandomEndSessionState


def logged_out(browser) -> None:
    """The second authorization: ``prompt=none`` must now fail with an error that needs a
    user interface (CheckErrorFromAuthorizationEndpointIsOneThatRequiredAUserInterface)."""
    request, response = prompt_none(browser, state_length=128)
    error_params(response, request, USER_INTERFACE_ERRORS)


def still_logged_in(browser) -> None:
    request, response = prompt_none(browser)
    assert "code" in callback_params(response, request["redirect_uri"])


def confirmation_page(response) -> None:
    """compat §6: without a hint matching the session the OP asks first, on a page of its
    own with a (CSRF-protected) POST form, and does not redirect."""
    body = stays_on_op(response)
    assert response.status_code == 200
    assert [form for form in forms_of(body) if form.method == "post"]


def redirected_to_rp(response, state: str | None) -> None:
    """CheckPostLogoutState / CheckNoPostLogoutState and
    CheckForUnexpectedParametersInPostLogoutRedirect: the registered URI, with exactly the
    ``state`` sent (or none)."""
    params = callback_params(response, POST_LOGOUT_REDIRECT_URI)
    assert params == ({"state": state} if state is not None else {}), params


def test_oidcc_rp_initiated_logout_discovery_endpoint_verification(client):
    """oidcc-rp-initiated-logout-discovery-endpoint-verification (in the plan, not in the
    checklist's table): discovery has ``end_session_endpoint`` = ``{issuer}oidc/logout``
    (compat §7), https when the issuer is (CheckDiscEndpointAllEndpointsAreHttps)."""
    metadata = discovery(client)
    assert metadata["end_session_endpoint"] == f"{ISSUER}oidc/logout"
    secure = discovery(client, "https://t1.test")
    assert secure["end_session_endpoint"] == "https://t1.test/oidc/logout"


def test_oidcc_rp_initiated_logout(app, client):
    """oidcc-rp-initiated-logout: a valid hint (it matches the session, so no question)
    and the registered URI: redirect to it with the state, nothing else; afterwards
    ``prompt=none`` fails, also for a copy of the old session cookie (checklist OI-05)."""
    flow = logged_in(client)
    stolen = client.get_cookie(COOKIE, domain="t1.test").value
    state = end_session_state()
    response = end_session(
        client,
        id_token_hint=flow.tokens["id_token"],
        post_logout_redirect_uri=POST_LOGOUT_REDIRECT_URI,
        state=state,
    )
    redirected_to_rp(response, state)
    logged_out(client)
    replay = app.test_client()
    replay.set_cookie(COOKIE, stolen, domain="t1.test")
    logged_out(replay)


def test_oidcc_rp_initiated_logout_bad_post_logout_redirect_uri(client):
    """oidcc-rp-initiated-logout-bad-post-logout-redirect-uri: an unregistered
    ``post_logout_redirect_uri`` (the suite's ``…/bad_post_logout_redirect_uri``) with a
    valid hint: a 400 page, no redirect anywhere."""
    flow = logged_in(client)
    response = end_session(
        client,
        id_token_hint=flow.tokens["id_token"],
        post_logout_redirect_uri="https://app.test/bad_post_logout_redirect_uri",
        state=end_session_state(),
    )
    error_page(response)
    stays_on_op(confirm_if_asked(client, response))


def test_oidcc_rp_initiated_logout_modified_id_token_hint(client):
    """oidcc-rp-initiated-logout-modified-id-token-hint: the real ID token re-headed as
    ``alg: none`` with an empty signature (ChangeIdTokenToAlgNone): invalid, so a 400 page
    and no redirect (checklist JW-03, LO-06)."""
    flow = logged_in(client)
    payload = flow.tokens["id_token"].split(".")[1]
    none = b64url(json.dumps({"alg": "none"}).encode())
    hint = f"{none}.{payload}."
    response = end_session(
        client,
        id_token_hint=hint,
        post_logout_redirect_uri=POST_LOGOUT_REDIRECT_URI,
        state=end_session_state(),
    )
    error_page(response)
    stays_on_op(confirm_if_asked(client, response))


def test_oidcc_rp_initiated_logout_no_id_token_hint(client):
    """oidcc-rp-initiated-logout-no-id-token-hint: the registered URI and a state but no
    hint: the OP asks (no redirect), and once the user confirms it logs out without
    redirecting either (RPL §3: no post-logout redirection without a hint)."""
    logged_in(client)
    response = end_session(
        client, post_logout_redirect_uri=POST_LOGOUT_REDIRECT_URI, state=end_session_state()
    )
    confirmation_page(response)
    still_logged_in(client)
    stays_on_op(confirm_if_asked(client, response))
    logged_out(client)


def test_oidcc_rp_initiated_logout_no_params(client):
    """oidcc-rp-initiated-logout-no-params: no parameters at all: the OP asks, the user
    confirms, the logged-out page shows (no redirect) and the user is logged out."""
    logged_in(client)
    response = end_session(client)
    confirmation_page(response)
    stays_on_op(confirm_if_asked(client, response))
    logged_out(client)


def test_oidcc_rp_initiated_logout_no_post_logout_redirect_uri(client):
    """oidcc-rp-initiated-logout-no-post-logout-redirect-uri: a valid hint and a state but
    no URI: the user is logged out and sees the logged-out page; the suite fails an OP that
    then redirects to the client's registered URI anyway (so no "first logout URL"
    default here)."""
    flow = logged_in(client)
    response = end_session(client, id_token_hint=flow.tokens["id_token"], state=end_session_state())
    assert response.status_code == 200
    stays_on_op(confirm_if_asked(client, response))
    logged_out(client)


def test_oidcc_rp_initiated_logout_no_state(client):
    """oidcc-rp-initiated-logout-no-state: a valid hint and the registered URI but no
    state: redirect to the URI with no state and no other parameter; then logged out."""
    flow = logged_in(client)
    response = end_session(
        client,
        id_token_hint=flow.tokens["id_token"],
        post_logout_redirect_uri=POST_LOGOUT_REDIRECT_URI,
    )
    redirected_to_rp(response, None)
    logged_out(client)


def test_oidcc_rp_initiated_logout_only_state(client):
    """oidcc-rp-initiated-logout-only-state: only a state: the OP asks, the user confirms,
    the logged-out page shows (no redirect), and the user is logged out."""
    logged_in(client)
    response = end_session(client, state=end_session_state())
    confirmation_page(response)
    stays_on_op(confirm_if_asked(client, response))
    logged_out(client)


def test_oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri(client):
    """oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri: the registered URI
    plus ``?foo=bar`` with a valid hint: not registered (exact match), a 400 page, no
    redirect (checklist LO-05)."""
    flow = logged_in(client)
    response = end_session(
        client,
        id_token_hint=flow.tokens["id_token"],
        post_logout_redirect_uri=f"{POST_LOGOUT_REDIRECT_URI}?foo=bar",
        state=end_session_state(),
    )
    error_page(response)
    stays_on_op(confirm_if_asked(client, response))


def test_oidcc_rp_initiated_logout_bad_id_token_hint(app, client):
    """oidcc-rp-initiated-logout-bad-id-token-hint: a hint "signed by the test suite" —
    GenerateFakeIdTokenClaims signed with the client secret as an HS256 key
    (GenerateJWKsFromClientSecret) — gets a 400 page and no redirect. Also, in a second
    browser, the real claims under our own ``kid`` signed by a foreign RSA key (checklist
    JW-03, LO-06): the same."""
    logged_in(client)
    now = int(time.time())
    fake = {
        "iss": WEB.client_id,
        "sub": "SubjectID",
        "aud": ISSUER,
        "nonce": "flibble",
        "iat": now,
        "exp": now + 300,
    }
    hint = jwt.encode({"alg": "HS256"}, fake, OctKey.import_key(WEB.secret.encode()))
    response = end_session(
        client,
        id_token_hint=hint,
        post_logout_redirect_uri=POST_LOGOUT_REDIRECT_URI,
        state=end_session_state(),
    )
    error_page(response)
    stays_on_op(confirm_if_asked(client, response))

    other = app.test_client()
    flow = logged_in(other)
    foreign = RSAKey.generate_key(2048)
    header = {"alg": "RS256", "typ": "JWT", "kid": flow.header["kid"]}
    hint = jwt.encode(header, jose_payload(flow.tokens["id_token"]), foreign)
    response = end_session(
        other,
        id_token_hint=hint,
        post_logout_redirect_uri=POST_LOGOUT_REDIRECT_URI,
        state=end_session_state(),
    )
    error_page(response)
    stays_on_op(confirm_if_asked(other, response))

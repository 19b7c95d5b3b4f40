from tests.conftest import T1
from tests.conftest import login_code
from tests.conftest import redeem


def test_full_login_returns_tokens(t1):
    code = login_code(t1)
    response = redeem(t1, code)
    assert response.status_code == 200, response.json
    body = response.json
    assert {"access_token", "id_token", "token_type", "expires_in"} <= set(body)
    info = t1.get(
        "/userinfo",
        base_url=f"http://{T1}",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert info.status_code == 200
    assert info.json["email"] == "alice@example.test"

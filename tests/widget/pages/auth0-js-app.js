// auth0.js 10, unchanged: WebAuth.login (cross-origin authentication) and WebAuth.authorize.
(function () {
  "use strict";
  var c = window.AUTH0_TEST;
  var webAuth = new auth0.WebAuth({
    domain: c.domain,
    clientID: c.clientId,
    redirectUri: c.redirectUrl,
    responseType: "code",
    scope: "openid profile email",
    overrides: { __tenant: c.tenant, __token_issuer: c.baseUrl + "/", __jwks_uri: c.baseUrl + "/.well-known/jwks.json" }
  });
  window.auth0Errors = [];
  var pkce = { code_challenge: c.codeChallenge, code_challenge_method: "S256", state: c.state, nonce: c.nonce };
  window.loginWithPassword = function (username, password) {
    webAuth.login(Object.assign({ realm: c.connection, username: username, password: password }, pkce), function (err) {
      window.auth0Errors.push(err);
    });
  };
  window.authorizeWithConnection = function () {
    webAuth.authorize(Object.assign({ connection: c.connection }, pkce));
  };
  window.auth0Ready = true;
})();

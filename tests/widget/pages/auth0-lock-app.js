// Auth0's Lock 14, unchanged, configured for login_site (docs/widget.md, "Auth0's own widgets").
(function () {
  "use strict";
  var c = window.AUTH0_TEST;
  var lock = new Auth0Lock(c.clientId, c.domain, {
    container: "lock",
    configurationBaseUrl: c.baseUrl,
    allowedConnections: [c.connection],
    avatar: null, // no gravatar lookups from the test
    theme: { logo: "data:image/gif;base64,R0lGODlhAQABAAAAACw=" },
    auth: {
      redirect: true,
      redirectUrl: c.redirectUrl,
      responseType: "code",
      params: {
        scope: "openid profile email",
        code_challenge: c.codeChallenge,
        code_challenge_method: "S256"
      }
    },
    overrides: { __tenant: c.tenant, __token_issuer: c.baseUrl + "/", __jwks_uri: c.baseUrl + "/.well-known/jwks.json" }
  });
  window.lockEvents = [];
  ["authorization_error", "unrecoverable_error", "signin ready"].forEach(function (name) {
    lock.on(name, function (e) { window.lockEvents.push({ name: name, error: e && (e.description || e.message || String(e)) }); });
  });
  lock.show();
})();

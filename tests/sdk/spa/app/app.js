// A minimal single-page application using @auth0/auth0-spa-js unchanged.
//
// Configuration comes from `window.SPA_CONFIG` (set by the test before any script runs) or,
// failing that, from the query string: `?domain=http://t1.localhost:PORT&refresh=1&cache=localstorage`.
// The test drives everything through `window.spa`; nothing runs on its own, so each call and
// each request it causes is deliberate.
(function () {
  "use strict";

  const ORIGIN = window.location.origin; // must be exactly http://localhost:38123
  const REDIRECT_URI = ORIGIN + "/callback";
  const SCOPE = "openid profile email offline_access";

  function configFromQuery() {
    const query = new URLSearchParams(window.location.search);
    const config = {};
    if (query.get("domain")) config.domain = query.get("domain");
    if (query.get("refresh")) config.useRefreshTokens = query.get("refresh") === "1";
    if (query.get("cache")) config.cacheLocation = query.get("cache");
    if (query.get("audience")) config.audience = query.get("audience");
    return config;
  }

  const config = Object.assign(
    { clientId: "sdk-spa", useRefreshTokens: false, cacheLocation: "memory" },
    configFromQuery(),
    window.SPA_CONFIG || {}
  );

  function makeClient(overrides) {
    const options = Object.assign({}, config, overrides || {});
    const authorizationParams = { redirect_uri: REDIRECT_URI, scope: SCOPE };
    if (options.audience) authorizationParams.audience = options.audience;
    return new auth0.Auth0Client({
      domain: options.domain, // starts with http: used as-is, issuer = domain + "/"
      clientId: options.clientId,
      useRefreshTokens: options.useRefreshTokens,
      cacheLocation: options.cacheLocation,
      authorizationParams: authorizationParams,
    });
  }

  // An SDK error as plain data the test can print: spa-js errors carry `error` and
  // `error_description`; network failures are TypeErrors with only a message.
  function describe(err) {
    return {
      ok: false,
      name: err && err.name,
      error: err && err.error,
      error_description: err && err.error_description,
      message: err && err.message,
    };
  }

  async function attempt(fn) {
    try {
      return { ok: true, value: await fn() };
    } catch (err) {
      return describe(err);
    }
  }

  // The SDK's own cache entries when cacheLocation is "localstorage".
  function cacheEntries() {
    const entries = {};
    for (let i = 0; i < window.localStorage.length; i += 1) {
      const key = window.localStorage.key(i);
      if (key.startsWith("@@auth0spajs@@")) {
        entries[key] = JSON.parse(window.localStorage.getItem(key));
      }
    }
    return entries;
  }

  let client = makeClient();

  window.spa = {
    config: config,
    get client() {
      return client;
    },
    // Replace the client, e.g. to compare useRefreshTokens true and false on one page.
    useClient(overrides) {
      client = makeClient(overrides);
      return true;
    },
    login(audience) {
      const authorizationParams = { redirect_uri: REDIRECT_URI, scope: SCOPE };
      if (audience) authorizationParams.audience = audience;
      // Navigates away: the test waits for the URL, not for this promise.
      return client.loginWithRedirect({ authorizationParams: authorizationParams });
    },
    handleRedirectCallback() {
      return attempt(() => client.handleRedirectCallback());
    },
    getUser() {
      return attempt(() => client.getUser());
    },
    getTokenSilently(options) {
      return attempt(() =>
        client.getTokenSilently(Object.assign({ detailedResponse: true }, options || {}))
      );
    },
    logout() {
      return client.logout({ logoutParams: { returnTo: ORIGIN + "/" } });
    },
    cacheEntries: cacheEntries,
  };

  document.getElementById("domain").textContent = String(config.domain);
  document.getElementById("login").addEventListener("click", () => window.spa.login());
  document.getElementById("logout").addEventListener("click", () => window.spa.logout());
  window.spaReady = true;
})();

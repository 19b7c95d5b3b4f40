// The test page's own code: builds the widget from window.WIDGET (set by the test before
// any script runs) and records what the widget tells the page.
(function () {
  "use strict";
  var config = window.WIDGET || {};
  var events = (window.widgetEvents = []);
  var lock = new LoginSiteLock(config.clientId, config.domain, config.options || {});
  [
    "show", "hide", "signin ready", "signup ready", "forgot_password ready", "hash_parsed",
    "authenticated", "authorization_error", "signup success", "signup error",
    "forgot_password success", "forgot_password error", "passwordless start", "unrecoverable_error"
  ].forEach(function (name) {
    lock.on(name, function (payload) {
      events.push({ name: name, payload: payload === undefined ? null : JSON.parse(JSON.stringify(payload)) });
      if (name === "authenticated") {
        document.getElementById("result").textContent =
          "Signed in as " + (payload.idTokenPayload && payload.idTokenPayload.email);
      }
    });
  });
  window.lock = lock;
  document.getElementById("open").addEventListener("click", function () { lock.show(); });
  if (config.autoShow) lock.show();
})();

/*! LoginSiteLock 1.0.0 — the login box of login_site, served at /lock/1/lock.js.
 *
 * A classic script that also loads as a module: it defines `LoginSiteLock` on the global
 * object and nothing else. No framework, no eval, no innerHTML: every text from the server
 * or the user reaches the page through textContent or an attribute, so the box runs under
 * a strict Content-Security-Policy (no 'unsafe-inline', no 'unsafe-eval').
 *
 * Protocol (docs/widget.md): the client's public configuration from
 * `GET /client/{client_id}.js` (Auth0's `Auth0.setClient({...})`), embedded database and
 * passwordless login through `POST /co/authenticate` and a `login_ticket` redeemed at
 * `/authorize`, PKCE (RFC 7636) and the code exchange at `/oauth/token` for public clients.
 * Tokens stay in memory; only the short-lived login transaction (state, nonce, PKCE
 * verifier) is kept in sessionStorage to survive the redirect.
 */
(function (root) {
  "use strict";

  var VERSION = "1.0.0";
  var PASSWORD_REALM = "http://auth0.com/oauth/grant-type/password-realm";
  var PASSWORDLESS_OTP = "http://auth0.com/oauth/grant-type/passwordless/otp";
  var DATABASE_STRATEGIES = ["auth0"];
  var PASSWORDLESS_STRATEGIES = ["email", "sms"];
  var ENTERPRISE_STRATEGIES = [
    "ad", "adfs", "auth0-adldap", "custom", "google-apps", "ip", "mscrm", "office365",
    "oidc", "okta", "pingfederate", "samlp", "sharepoint", "waad"
  ];
  var SOCIAL_NAMES = {
    "google-oauth2": "Google", github: "GitHub", windowslive: "Microsoft", facebook: "Facebook",
    linkedin: "LinkedIn", apple: "Apple", slack: "Slack", box: "Box", amazon: "Amazon",
    bitbucket: "Bitbucket", twitter: "X"
  };
  var CONFIG_TIMEOUT_MS = 20000;
  var TRANSACTION_TTL_MS = 60 * 60 * 1000;
  var CO_VERIFIER_TTL_SECONDS = 15 * 60; // as auth0.js
  var ID_TOKEN_LEEWAY_SECONDS = 60;
  var TX_PREFIX = "lsl.tx.";
  var CO_COOKIE_PREFIX = "lsl_co_";
  var EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
  var E164 = /^\+[0-9]{1,15}$/;
  var AUTHORIZE_RESERVED = ["state", "nonce", "code_challenge", "code_challenge_method",
    "client_id", "redirect_uri", "response_type", "login_ticket"];

  // --- languages ------------------------------------------------------------------------------

  var DICTIONARIES = {
    en: {
      title: "",
      loginSubtitle: "Log in to continue to %s.",
      signUpSubtitle: "Sign up to continue to %s.",
      loginTab: "Log in",
      signUpTab: "Sign up",
      tabsLabel: "Log in or sign up",
      emailLabel: "Email address",
      usernameLabel: "Username",
      usernameOrEmailLabel: "Username or email address",
      passwordLabel: "Password",
      phoneLabel: "Phone number",
      codeLabel: "Code",
      loginSubmit: "Log in",
      signUpSubmit: "Sign up",
      forgotSubmit: "Send email",
      passwordlessSubmit: "Send code",
      codeSubmit: "Continue",
      forgotLink: "Forgot password?",
      backLink: "Back",
      forgotTitle: "Reset your password",
      forgotInstructions: "Enter your email address and we will send you a link to reset your password.",
      forgotSuccess: "We've just sent you an email to reset your password.",
      signUpSuccess: "Your account was created. Check your email to verify it, then log in.",
      or: "or",
      socialButton: "Continue with %s",
      databaseRedirectButton: "Log in with email and password",
      signUpRedirectButton: "Create an account",
      passwordlessEmailButton: "Email me a code",
      passwordlessSmsButton: "Text me a code",
      passwordlessTitle: "Log in with a code",
      passwordlessEmailInstructions: "Enter your email address to receive a one-time code.",
      passwordlessSmsInstructions: "Enter your phone number to receive a one-time code by text message.",
      codeTitle: "Enter your code",
      codeInstructions: "We sent a code to %s. Enter it below.",
      resendCode: "Send a new code",
      loading: "Loading…",
      busy: "Please wait…",
      redirecting: "Signing you in…",
      close: "Close",
      policyTitle: "Your password must contain:",
      policyMet: "(done)",
      "policy.lengthAtLeast": "At least %d characters",
      "policy.containsAtLeast": "At least %d of the following %d types of characters:",
      "policy.lowerCase": "Lower case letters (a-z)",
      "policy.upperCase": "Upper case letters (A-Z)",
      "policy.numbers": "Numbers (0-9)",
      "policy.specialCharacters": "Special characters (e.g. !@#$%^&*)",
      "policy.identicalChars": "No more than %d identical characters in a row (e.g., \"%s\" not allowed)",
      "error.required": "Please fill in: %s.",
      "error.invalidEmail": "Enter a valid email address.",
      "error.invalidPhone": "Enter the phone number in international format, e.g. +15555550100.",
      "error.weakPassword": "The password does not meet the requirements:",
      "error.wrongCredentials": "Wrong email or password.",
      "error.wrongCode": "Wrong or expired code.",
      "error.blocked": "Your account is blocked. Contact the administrator.",
      "error.tooManyAttempts": "Your account has been blocked after multiple consecutive login attempts. Check your email for a link to unblock it, or reset your password.",
      "error.tooManyRequests": "Too many attempts. Wait a moment and try again.",
      "error.passwordLeaked": "This password was found in a data breach. Reset your password to log in.",
      "error.userExists": "We could not create this account. If you already have one, log in.",
      "error.signupDisabled": "Sign-up is not available for this application.",
      "error.passwordDictionary": "This password is too common.",
      "error.passwordNoUserInfo": "The password must not contain your name or email address.",
      "error.passwordHistory": "Choose a password you have not used recently.",
      "error.crossOrigin": "Logging in from this page is not enabled for this application (cross-origin authentication).",
      "error.origin": "This page (%s) is not allowed to log in to this application: its origin is not one of the application's allowed origins.",
      "error.network": "The login service could not be reached. Check your connection and try again.",
      "error.config": "This login box could not load its settings. Check the client ID and the domain.",
      "error.popupBlocked": "The login window was blocked. Allow pop-ups for this site and try again.",
      "error.popupClosed": "The login window was closed before the login finished.",
      "error.noConnection": "No sign-in method is enabled for this application yet.",
      "error.state": "The login response does not match a login started in this browser. Please try again.",
      "error.invalidToken": "The login response could not be verified. Please try again.",
      "error.unknown": "Something went wrong. Please try again."
    },
    fr: {
      title: "",
      loginSubtitle: "Connectez-vous pour continuer vers %s.",
      signUpSubtitle: "Inscrivez-vous pour continuer vers %s.",
      loginTab: "Connexion",
      signUpTab: "Inscription",
      tabsLabel: "Se connecter ou s'inscrire",
      emailLabel: "Adresse e-mail",
      usernameLabel: "Nom d'utilisateur",
      usernameOrEmailLabel: "Nom d'utilisateur ou adresse e-mail",
      passwordLabel: "Mot de passe",
      phoneLabel: "Numéro de téléphone",
      codeLabel: "Code",
      loginSubmit: "Se connecter",
      signUpSubmit: "S'inscrire",
      forgotSubmit: "Envoyer l'e-mail",
      passwordlessSubmit: "Envoyer le code",
      codeSubmit: "Continuer",
      forgotLink: "Mot de passe oublié ?",
      backLink: "Retour",
      forgotTitle: "Réinitialiser votre mot de passe",
      forgotInstructions: "Saisissez votre adresse e-mail : nous vous enverrons un lien pour réinitialiser votre mot de passe.",
      forgotSuccess: "Nous venons de vous envoyer un e-mail pour réinitialiser votre mot de passe.",
      signUpSuccess: "Votre compte a été créé. Confirmez votre adresse grâce à l'e-mail reçu, puis connectez-vous.",
      or: "ou",
      socialButton: "Continuer avec %s",
      databaseRedirectButton: "Se connecter avec e-mail et mot de passe",
      signUpRedirectButton: "Créer un compte",
      passwordlessEmailButton: "Recevoir un code par e-mail",
      passwordlessSmsButton: "Recevoir un code par SMS",
      passwordlessTitle: "Se connecter avec un code",
      passwordlessEmailInstructions: "Saisissez votre adresse e-mail pour recevoir un code à usage unique.",
      passwordlessSmsInstructions: "Saisissez votre numéro de téléphone pour recevoir un code à usage unique par SMS.",
      codeTitle: "Saisissez votre code",
      codeInstructions: "Nous avons envoyé un code à %s. Saisissez-le ci-dessous.",
      resendCode: "Recevoir un nouveau code",
      loading: "Chargement…",
      busy: "Veuillez patienter…",
      redirecting: "Connexion en cours…",
      close: "Fermer",
      policyTitle: "Votre mot de passe doit contenir :",
      policyMet: "(fait)",
      "policy.lengthAtLeast": "Au moins %d caractères",
      "policy.containsAtLeast": "Au moins %d des %d types de caractères suivants :",
      "policy.lowerCase": "Lettres minuscules (a-z)",
      "policy.upperCase": "Lettres majuscules (A-Z)",
      "policy.numbers": "Chiffres (0-9)",
      "policy.specialCharacters": "Caractères spéciaux (par ex. !@#$%^&*)",
      "policy.identicalChars": "Pas plus de %d caractères identiques à la suite (par ex. « %s » interdit)",
      "error.required": "Veuillez remplir : %s.",
      "error.invalidEmail": "Saisissez une adresse e-mail valide.",
      "error.invalidPhone": "Saisissez le numéro au format international, par ex. +33612345678.",
      "error.weakPassword": "Le mot de passe ne respecte pas les règles :",
      "error.wrongCredentials": "E-mail ou mot de passe incorrect.",
      "error.wrongCode": "Code incorrect ou expiré.",
      "error.blocked": "Votre compte est bloqué. Contactez l'administrateur.",
      "error.tooManyAttempts": "Votre compte a été bloqué après plusieurs tentatives de connexion échouées. Consultez vos e-mails pour le débloquer, ou réinitialisez votre mot de passe.",
      "error.tooManyRequests": "Trop de tentatives. Patientez un instant puis réessayez.",
      "error.passwordLeaked": "Ce mot de passe figure dans une fuite de données. Réinitialisez votre mot de passe pour vous connecter.",
      "error.userExists": "Nous n'avons pas pu créer ce compte. Si vous en avez déjà un, connectez-vous.",
      "error.signupDisabled": "L'inscription n'est pas ouverte pour cette application.",
      "error.passwordDictionary": "Ce mot de passe est trop courant.",
      "error.passwordNoUserInfo": "Le mot de passe ne doit contenir ni votre nom ni votre adresse e-mail.",
      "error.passwordHistory": "Choisissez un mot de passe que vous n'avez pas utilisé récemment.",
      "error.crossOrigin": "La connexion depuis cette page n'est pas activée pour cette application (authentification cross-origin).",
      "error.origin": "Cette page (%s) n'est pas autorisée à se connecter à cette application : son origine ne fait pas partie des origines autorisées.",
      "error.network": "Le service de connexion est injoignable. Vérifiez votre connexion et réessayez.",
      "error.config": "Cette boîte de connexion n'a pas pu charger ses réglages. Vérifiez l'identifiant client et le domaine.",
      "error.popupBlocked": "La fenêtre de connexion a été bloquée. Autorisez les fenêtres pop-up pour ce site et réessayez.",
      "error.popupClosed": "La fenêtre de connexion a été fermée avant la fin de la connexion.",
      "error.noConnection": "Aucune méthode de connexion n'est encore activée pour cette application.",
      "error.state": "La réponse de connexion ne correspond à aucune connexion commencée dans ce navigateur. Réessayez.",
      "error.invalidToken": "La réponse de connexion n'a pas pu être vérifiée. Réessayez.",
      "error.unknown": "Une erreur est survenue. Réessayez."
    }
  };

  function dictionary(language, overrides) {
    var base = DICTIONARIES[language] || DICTIONARIES.en;
    var result = {};
    var key;
    for (key in DICTIONARIES.en) result[key] = DICTIONARIES.en[key];
    for (key in base) result[key] = base[key];
    for (key in overrides || {}) {
      if (typeof overrides[key] === "string") result[key] = overrides[key];
    }
    return result;
  }

  /** Fills %d and %s in order, as the server's rule messages do. */
  function format(text, args) {
    var index = 0;
    return String(text).replace(/%[ds]/g, function () {
      var value = args && index < args.length ? args[index] : "";
      index += 1;
      return String(value);
    });
  }

  // --- encoding and randomness ----------------------------------------------------------------

  function cryptoApi() {
    var c = root.crypto;
    if (!c || typeof c.getRandomValues !== "function") {
      throw new Error("crypto.getRandomValues is required");
    }
    return c;
  }

  function base64UrlEncode(bytes) {
    var binary = "";
    for (var i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function base64UrlDecode(text) {
    var b64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var binary = atob(b64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return new TextDecoder().decode(bytes);
  }

  /** `byteCount` random bytes from the CSPRNG, base64url: 32 bytes give 43 characters. */
  function randomString(byteCount) {
    var bytes = new Uint8Array(byteCount || 32);
    cryptoApi().getRandomValues(bytes);
    return base64UrlEncode(bytes);
  }

  /** RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))). */
  function pkceChallenge(verifier) {
    var data = new TextEncoder().encode(verifier);
    return cryptoApi().subtle.digest("SHA-256", data).then(function (digest) {
      return base64UrlEncode(new Uint8Array(digest));
    });
  }

  // --- URLs -----------------------------------------------------------------------------------

  /** Like auth0.js: a domain starting with http is used as is, else https://domain. */
  function baseUrl(domain) {
    if (typeof domain !== "string" || !domain) throw new Error("domain is required");
    var url = /^https?:\/\//i.test(domain) ? domain : "https://" + domain;
    return url.replace(/\/+$/, "");
  }

  function originOf(url) {
    var match = /^(https?:\/\/[^/?#]+)/i.exec(url);
    return match ? match[1].toLowerCase() : "";
  }

  function withQuery(url, params) {
    var parts = [];
    Object.keys(params).forEach(function (key) {
      var value = params[key];
      if (value === undefined || value === null || value === "") return;
      parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(String(value)));
    });
    if (!parts.length) return url;
    return url + (url.indexOf("?") >= 0 ? "&" : "?") + parts.join("&");
  }

  function parseParams(text) {
    var result = {};
    String(text || "").replace(/^[?#]/, "").split("&").forEach(function (pair) {
      if (!pair) return;
      var at = pair.indexOf("=");
      var key = at >= 0 ? pair.slice(0, at) : pair;
      var value = at >= 0 ? pair.slice(at + 1) : "";
      try {
        result[decodeURIComponent(key.replace(/\+/g, " "))] =
          decodeURIComponent(value.replace(/\+/g, " "));
      } catch (e) {
        // A malformed escape is not ours; leave it out.
      }
    });
    return result;
  }

  // --- client configuration -------------------------------------------------------------------

  function kindOf(strategy) {
    if (DATABASE_STRATEGIES.indexOf(strategy) >= 0) return "database";
    if (PASSWORDLESS_STRATEGIES.indexOf(strategy) >= 0) return "passwordless";
    if (ENTERPRISE_STRATEGIES.indexOf(strategy) >= 0) return "enterprise";
    return "social";
  }

  /** The `Auth0.setClient` object as lists by kind, in the server's order. */
  function parseConfig(raw, allowed) {
    var config = {
      id: raw && raw.id,
      name: (raw && raw.name) || "",
      tenantName: (raw && (raw.tenant_name || raw.tenant)) || "",
      branding: (raw && raw.branding) || {},
      database: [],
      passwordless: [],
      social: [],
      enterprise: []
    };
    var strategies = (raw && Array.isArray(raw.strategies)) ? raw.strategies : [];
    strategies.forEach(function (strategy) {
      if (!strategy || typeof strategy.name !== "string") return;
      var kind = kindOf(strategy.name);
      (Array.isArray(strategy.connections) ? strategy.connections : []).forEach(function (conn) {
        if (!conn || typeof conn.name !== "string") return;
        if (allowed && allowed.indexOf(conn.name) < 0) return;
        var entry = {
          name: conn.name,
          strategy: strategy.name,
          kind: kind,
          displayName: conn.display_name || SOCIAL_NAMES[strategy.name] || conn.name
        };
        if (kind === "database") {
          entry.showSignup = conn.showSignup !== false;
          entry.showForgot = conn.showForgot !== false;
          entry.requiresUsername = !!conn.requires_username;
          entry.passwordRules = Array.isArray(conn.passwordRules) ? conn.passwordRules : [];
        }
        config[kind].push(entry);
      });
    });
    return config;
  }

  var pendingConfigs = {};
  var scriptUrlPolicy = null;

  /** Under `require-trusted-types-for 'script'` a script URL must come from a policy; ours,
   * `login-site-lock`, lets through only the client configuration script's URL. */
  function trustedScriptUrl(url) {
    var tt = root.trustedTypes;
    if (!tt || typeof tt.createPolicy !== "function") return url;
    if (!scriptUrlPolicy) {
      try {
        scriptUrlPolicy = tt.createPolicy("login-site-lock", {
          createScriptURL: function (value) {
            if (/^https?:\/\/[^/?#]+\/client\/[^/?#]+\.js\?t\d+$/.test(value)) return value;
            throw new TypeError("login-site-lock: not a client configuration URL");
          }
        });
      } catch (e) {
        return url; // the page's CSP does not allow the policy: its own rules decide
      }
    }
    return scriptUrlPolicy.createScriptURL(url);
  }

  /** JSONP as Lock does it: `<script src=…/client/{id}.js>` calls `Auth0.setClient(o)`. */
  function loadConfig(base, clientId, options) {
    var key = base + "|" + clientId;
    if (pendingConfigs[key]) return pendingConfigs[key].promise;
    var entry = {};
    entry.promise = new Promise(function (resolve, reject) {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    pendingConfigs[key] = entry;
    var auth0 = root.Auth0 = root.Auth0 || {};
    if (!auth0.__loginSiteLock) {
      var previous = auth0.setClient;
      auth0.setClient = function (object) {
        Object.keys(pendingConfigs).forEach(function (k) {
          var parts = k.split("|");
          if (object && object.id === parts[parts.length - 1]) pendingConfigs[k].resolve(object);
        });
        if (typeof previous === "function") previous.apply(this, arguments);
      };
      auth0.__loginSiteLock = true;
    }
    var doc = root.document;
    var script = doc.createElement("script");
    script.src = trustedScriptUrl(base + "/client/" + encodeURIComponent(clientId) + ".js?t" + Date.now());
    script.async = true;
    if (options && options.nonce) script.nonce = options.nonce;
    var timer = setTimeout(function () { fail(new Error("timeout")); }, CONFIG_TIMEOUT_MS);
    function fail(error) {
      clearTimeout(timer);
      delete pendingConfigs[key];
      entry.reject(error);
    }
    script.addEventListener("error", function () { fail(new Error("config_unavailable")); });
    entry.promise.then(function () { clearTimeout(timer); }, function () {});
    (doc.head || doc.documentElement).appendChild(script);
    return entry.promise;
  }

  // --- password policy ------------------------------------------------------------------------

  var CHARACTER_CLASSES = [
    ["lowerCase", /[a-z]/],
    ["upperCase", /[A-Z]/],
    ["numbers", /[0-9]/],
    ["specialCharacters", /[^A-Za-z0-9]/]
  ];

  /** The server's rules (codes and formats of `passwordRules`) checked against `password`. */
  function checkPassword(rules, password) {
    var value = String(password || "");
    return (rules || []).map(function (rule) {
      var fmt = Array.isArray(rule.format) ? rule.format : [];
      var result = { code: rule.code, format: fmt, verified: true };
      if (rule.code === "lengthAtLeast") {
        result.verified = value.length >= (fmt[0] || 1);
      } else if (rule.code === "containsAtLeast") {
        var of = fmt[1] || 4;
        result.items = CHARACTER_CLASSES.slice(0, of).map(function (pair) {
          return { code: pair[0], verified: pair[1].test(value) };
        });
        var met = result.items.filter(function (item) { return item.verified; }).length;
        result.verified = met >= (fmt[0] || of);
      } else if (rule.code === "identicalChars") {
        var limit = (fmt[0] || 2) + 1;
        result.verified = !new RegExp("(.)" + "\\1".repeat(limit - 1)).test(value);
      }
      return result;
    });
  }

  function describeRule(t, rule) {
    return format(t["policy." + rule.code] || rule.code, rule.format);
  }

  // --- errors ---------------------------------------------------------------------------------

  /** One shape for Auth0's two error bodies (OAuth and legacy database) and plain text. */
  function normalizeError(status, body, text) {
    var data = body && typeof body === "object" ? body : {};
    var description = data.description !== undefined ? data.description : data.error_description;
    return {
      status: status,
      code: data.code || data.error || (status === 429 ? "too_many_requests" : "http_" + status),
      name: data.name || "",
      description: description !== undefined ? description : (text || ""),
      rules: description && typeof description === "object" && Array.isArray(description.rules)
        ? description.rules : null
    };
  }

  var ERROR_KEYS = {
    access_denied: "error.wrongCredentials",
    invalid_user_password: "error.wrongCredentials",
    invalid_grant: "error.wrongCredentials",
    blocked_user: "error.blocked",
    unauthorized: "error.blocked",
    too_many_attempts: "error.tooManyAttempts",
    too_many_requests: "error.tooManyRequests",
    password_leaked: "error.passwordLeaked",
    user_exists: "error.userExists",
    username_exists: "error.userExists",
    invalid_signup: "error.userExists",
    signup_disabled: "error.signupDisabled",
    unauthorized_client: "error.crossOrigin",
    "bad.email": "error.invalidEmail",
    "bad.phone_number": "error.invalidPhone",
    network: "error.network",
    origin: "error.origin",
    config: "error.config",
    popup_blocked: "error.popupBlocked",
    popup_closed: "error.popupClosed",
    invalid_state: "error.state",
    invalid_token: "error.invalidToken"
  };
  var PASSWORD_ERROR_KEYS = {
    PasswordDictionaryError: "error.passwordDictionary",
    PasswordNoUserInfoError: "error.passwordNoUserInfo",
    PasswordHistoryError: "error.passwordHistory"
  };

  /** What the user reads: {message, items} in the widget's language. */
  function describeError(t, error, context) {
    var items = [];
    var key;
    if (error.code === "invalid_password") {
      key = PASSWORD_ERROR_KEYS[error.name];
      if (!key) {
        key = "error.weakPassword";
        items = (error.rules || []).filter(function (r) { return !r.verified; }).map(function (r) {
          return describeRule(t, r);
        });
      }
    } else if (error.code === "access_denied" && context === "code") {
      key = "error.wrongCode";
    } else {
      key = ERROR_KEYS[error.code];
    }
    if (key) {
      var args = error.code === "origin" ? [error.description] : [];
      return { message: format(t[key], args), items: items };
    }
    // Not one we know: the server's own words are readable text (compat §0.6).
    var text = typeof error.description === "string" ? error.description : "";
    return { message: text || t["error.unknown"], items: items };
  }

  // --- tokens ---------------------------------------------------------------------------------

  function decodeJwt(token) {
    var parts = String(token || "").split(".");
    if (parts.length !== 3) throw new Error("invalid_token: not a JWT");
    return { header: JSON.parse(base64UrlDecode(parts[0])), payload: JSON.parse(base64UrlDecode(parts[1])) };
  }

  /** OIDC Core §3.1.3.7. The token comes straight from the token endpoint, so, as
   * auth0-spa-js does, the claims are checked and the signature left to the TLS channel. */
  function validateIdToken(payload, expected) {
    function fail(why) { throw new Error("invalid_token: " + why); }
    var now = Math.floor((expected.now || Date.now()) / 1000);
    var leeway = expected.leeway === undefined ? ID_TOKEN_LEEWAY_SECONDS : expected.leeway;
    if (payload.iss !== expected.issuer) fail("iss");
    var aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (aud.indexOf(expected.clientId) < 0) fail("aud");
    if (aud.length > 1 && payload.azp !== expected.clientId) fail("azp");
    if (typeof payload.exp !== "number" || payload.exp + leeway < now) fail("exp");
    if (typeof payload.iat !== "number") fail("iat");
    if (expected.nonce !== undefined && payload.nonce !== expected.nonce) fail("nonce");
    if (expected.maxAge !== undefined) {
      if (typeof payload.auth_time !== "number") fail("auth_time");
      if (payload.auth_time + expected.maxAge + leeway < now) fail("max_age");
    }
    return payload;
  }

  // --- browser storage ------------------------------------------------------------------------

  function safeStorage(kind) {
    try {
      var storage = root[kind];
      var probe = "lsl.probe";
      storage.setItem(probe, "1");
      storage.removeItem(probe);
      return storage;
    } catch (e) {
      return null;
    }
  }

  /** Login transactions by state, for the redirect back; spent once, expire in an hour. */
  function Transactions(storage, now) {
    this.storage = storage;
    this.now = now || function () { return Date.now(); };
  }
  Transactions.prototype.save = function (tx) {
    tx.createdAt = this.now();
    if (this.storage) this.storage.setItem(TX_PREFIX + tx.state, JSON.stringify(tx));
    return tx;
  };
  Transactions.prototype.take = function (state) {
    if (!this.storage || typeof state !== "string") return null;
    var key = TX_PREFIX + state;
    var text = this.storage.getItem(key);
    this.storage.removeItem(key);
    if (!text) return null;
    try {
      var tx = JSON.parse(text);
      return this.now() - tx.createdAt <= TRANSACTION_TTL_MS ? tx : null;
    } catch (e) {
      return null;
    }
  };
  /** The transaction without spending it (another widget's, maybe). */
  Transactions.prototype.peek = function (state) {
    if (!this.storage || typeof state !== "string") return null;
    try {
      return JSON.parse(this.storage.getItem(TX_PREFIX + state) || "null");
    } catch (e) {
      return null;
    }
  };

  /** auth0.js's key for a co_verifier: `co/verifier/<login_site origin>/<co_id>`. */
  function coVerifierKey(origin, coId) {
    return "co/verifier/" + encodeURIComponent(origin) + "/" + encodeURIComponent(coId);
  }

  function readCookie(doc, name) {
    var found = null;
    String(doc.cookie || "").split(";").forEach(function (part) {
      var at = part.indexOf("=");
      if (at > 0 && part.slice(0, at).trim() === name) found = decodeURIComponent(part.slice(at + 1));
    });
    return found;
  }

  /** The verifier goes to a cookie of the application's origin (as auth0.js does; readable
   * by its verification page in a third-party frame only where the browser allows such
   * cookies) and to sessionStorage. */
  function storeCoVerifier(win, key, verifier) {
    var name = CO_COOKIE_PREFIX + encodeURIComponent(key);
    var attributes = win.isSecureContext ? "; SameSite=None; Secure" : "; SameSite=Lax";
    try {
      win.document.cookie = name + "=" + encodeURIComponent(verifier) + "; Max-Age=" +
        CO_VERIFIER_TTL_SECONDS + "; Path=/" + attributes;
    } catch (e) { /* cookies disabled */ }
    var session = safeStorage("sessionStorage");
    if (session) session.setItem(key, verifier);
  }

  function takeCoVerifier(win, storage, key) {
    var name = CO_COOKIE_PREFIX + encodeURIComponent(key);
    var verifier = null;
    try {
      verifier = readCookie(win.document, name);
      if (verifier !== null) win.document.cookie = name + "=; Max-Age=0; Path=/";
    } catch (e) { /* a third-party frame without cookie access */ }
    try {
      var stored = storage ? storage.getItem(key) : null;
      if (storage) storage.removeItem(key);
      if (verifier === null) verifier = stored;
    } catch (e) { /* storage denied */ }
    return verifier;
  }

  /** For the page at the client's `cross_origin_loc` (compat §8): the equivalent of
   * auth0.js's `crossOriginVerification()`. Tells login_site's page "ready", then answers
   * its `co_verifier_request` with the verifier stored for that origin and id, once. */
  function crossOriginVerification(win) {
    win = win || root;
    var fragment = parseParams(win.location.hash);
    var target = fragment.origin || "";
    var storage = null;
    try { storage = win.sessionStorage; } catch (e) { storage = null; }
    win.addEventListener("message", function (event) {
      var data = event.data;
      if (!data || data.type !== "co_verifier_request" || !data.request) return;
      if (event.source !== win.parent || event.origin !== target) return;
      // The key holds the sender's origin: another site finds nothing.
      var verifier = takeCoVerifier(win, storage, coVerifierKey(event.origin, String(data.request.id)));
      event.source.postMessage(
        { type: "co_verifier_response", response: { verifier: verifier } },
        event.origin
      );
    });
    if (target && win.parent && win.parent !== win) {
      win.parent.postMessage({ type: "ready" }, target);
    }
  }

  // --- HTTP -----------------------------------------------------------------------------------

  function request(url, options) {
    var init = {
      method: options.method || "POST",
      headers: {},
      credentials: options.credentials || "omit",
      mode: "cors"
    };
    if (options.json) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.json);
    } else if (options.form) {
      init.headers["Content-Type"] = "application/x-www-form-urlencoded";
      init.body = new URLSearchParams(options.form).toString();
    }
    if (options.bearer) init.headers.Authorization = "Bearer " + options.bearer;
    return root.fetch(url, init).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (response.ok) return body !== null ? body : text;
        throw normalizeError(response.status, body, text);
      });
    }, function () {
      // The page cannot read the answer: a network failure or a refused CORS origin. An
      // opaque request to the same server tells them apart (it needs no CORS).
      var origin = root.location ? root.location.origin : "";
      return root.fetch(originOf(url) + "/healthz", { mode: "no-cors", cache: "no-store" })
        .then(function () {
          throw { code: "origin", description: origin };
        }, function () {
          throw { code: "network", description: "" };
        });
    });
  }

  // --- DOM ------------------------------------------------------------------------------------

  var instanceCount = 0;

  /** createElement with attributes, listeners and text children; never HTML parsing. */
  function h(tag, props) {
    var doc = root.document;
    var node = doc.createElement(tag);
    var key;
    props = props || {};
    for (key in props) {
      var value = props[key];
      if (value === undefined || value === null || value === false) continue;
      if (key === "on") {
        for (var type in value) node.addEventListener(type, value[type]);
      } else if (key === "className") {
        node.className = value;
      } else if (key === "text") {
        node.textContent = value;
      } else if (key === "value") {
        node.value = value;
      } else {
        node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (var i = 2; i < arguments.length; i += 1) append(node, arguments[i]);
    return node;
  }

  function append(parent, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) {
      child.forEach(function (c) { append(parent, c); });
    } else if (typeof child === "string") {
      parent.appendChild(root.document.createTextNode(child));
    } else {
      parent.appendChild(child);
    }
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  var FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), " +
    "select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

  function safeImageUrl(url) {
    return typeof url === "string" && /^(https?:\/\/|data:image\/)/i.test(url) ? url : null;
  }

  function safeColour(value) {
    if (typeof value !== "string" || !value) return null;
    if (root.CSS && typeof root.CSS.supports === "function") {
      return root.CSS.supports("color", value) ? value : null;
    }
    return /^#[0-9a-f]{3,8}$/i.test(value) ? value : null;
  }

  // --- the widget -----------------------------------------------------------------------------

  function LoginSiteLock(clientId, domain, options) {
    if (!(this instanceof LoginSiteLock)) return new LoginSiteLock(clientId, domain, options);
    if (typeof clientId !== "string" || !clientId) throw new Error("clientId is required");
    options = options || {};
    var auth = options.auth || {};
    var location = root.location;
    this.clientId = clientId;
    this.base = baseUrl(domain);
    this.origin = originOf(this.base);
    this.issuer = this.base + "/";
    this.id = "lsl-" + (instanceCount += 1);
    this.options = {
      container: options.container || null,
      mode: options.mode === "redirect" ? "redirect" : "embedded",
      closable: options.closable !== undefined ? !!options.closable : !options.container,
      allowSignUp: options.allowSignUp !== false,
      allowForgotPassword: options.allowForgotPassword !== false,
      allowedConnections: Array.isArray(options.allowedConnections) ? options.allowedConnections : null,
      initialScreen: options.initialScreen || "login",
      loginAfterSignUp: options.loginAfterSignUp !== false,
      language: options.language || "en",
      theme: options.theme || {},
      prefill: options.prefill || {},
      stylesheet: options.stylesheet !== false,
      autofocus: options.autofocus !== false,
      scriptNonce: options.scriptNonce || null,
      auth: {
        redirect: auth.redirect !== false,
        redirectUrl: auth.redirectUrl || (location ? location.origin + location.pathname : ""),
        responseType: auth.responseType || "code",
        responseMode: auth.responseMode || null,
        pkce: auth.pkce !== false,
        autoParseHash: auth.autoParseHash !== false,
        params: auth.params || {}
      }
    };
    this.t = dictionary(this.options.language, options.languageDictionary);
    this.transactions = new Transactions(safeStorage("sessionStorage"));
    this._listeners = {};
    this._state = {
      screen: "loading",
      values: {
        email: this.options.prefill.email || "",
        username: this.options.prefill.username || this.options.prefill.email || "",
        password: "",
        phone: "",
        code: ""
      },
      error: null,
      info: null,
      busy: false
    };
    this._config = null;
    this._configPromise = null;
    this._nodes = null;
    if (root.document && this.options.auth.autoParseHash) {
      var self = this;
      // After the constructor's caller has attached its listeners.
      Promise.resolve().then(function () { return self._resumeFromLocation(); }).catch(function (e) {
        if (root.console) root.console.error(e);
      });
    }
  }

  LoginSiteLock.version = VERSION;

  LoginSiteLock.prototype.on = function (event, listener) {
    (this._listeners[event] = this._listeners[event] || []).push(listener);
    return this;
  };

  LoginSiteLock.prototype.off = function (event, listener) {
    this._listeners[event] = (this._listeners[event] || []).filter(function (l) {
      return l !== listener;
    });
    return this;
  };

  LoginSiteLock.prototype._emit = function (event) {
    var args = Array.prototype.slice.call(arguments, 1);
    (this._listeners[event] || []).slice().forEach(function (listener) {
      try {
        listener.apply(null, args);
      } catch (e) {
        if (root.console) root.console.error(e);
      }
    });
  };

  LoginSiteLock.prototype.loadConfiguration = function () {
    var self = this;
    if (!this._configPromise) {
      this._configPromise = loadConfig(this.base, this.clientId, { nonce: this.options.scriptNonce })
        .then(function (raw) {
          self._config = parseConfig(raw, self.options.allowedConnections);
          return self._config;
        });
    }
    return this._configPromise;
  };

  // --- showing and hiding ---------------------------------------------------------------------

  LoginSiteLock.prototype.show = function (showOptions) {
    showOptions = showOptions || {};
    var self = this;
    if (!root.document.body) {
      root.document.addEventListener("DOMContentLoaded", function () { self.show(showOptions); });
      return this;
    }
    if (showOptions.initialScreen) this.options.initialScreen = showOptions.initialScreen;
    if (this._nodes) {
      this._setScreen(this._initialScreen());
      return this;
    }
    this._injectStylesheet();
    this._build();
    this._state.screen = "loading";
    this._state.error = showOptions.flashMessage && showOptions.flashMessage.type === "error"
      ? { message: String(showOptions.flashMessage.text || ""), items: [] } : null;
    this._state.info = showOptions.flashMessage && showOptions.flashMessage.type === "success"
      ? String(showOptions.flashMessage.text || "") : null;
    this._render();
    this._emit("show");
    this.loadConfiguration().then(function () {
      if (!self._nodes) return;
      self._applyBranding();
      self._setScreen(self._initialScreen(), true);
    }, function (error) {
      if (!self._nodes) return;
      self._state.screen = "unavailable";
      self._fail({ code: "config", description: String(error && error.message) });
      self._emit("unrecoverable_error", { code: "config", description: String(error && error.message) });
    });
    return this;
  };

  LoginSiteLock.prototype.hide = function () {
    if (!this._nodes) return this;
    var nodes = this._nodes;
    this._nodes = null;
    root.document.removeEventListener("focusin", nodes.onFocusIn, true);
    if (nodes.outer.parentNode) nodes.outer.parentNode.removeChild(nodes.outer);
    root.document.documentElement.classList.remove("lsl-modal-open");
    if (nodes.previousFocus && typeof nodes.previousFocus.focus === "function") {
      nodes.previousFocus.focus();
    }
    this._emit("hide");
    return this;
  };

  LoginSiteLock.prototype._injectStylesheet = function () {
    if (!this.options.stylesheet) return;
    var doc = root.document;
    var href = this.base + "/lock/1/lock.css";
    var links = doc.querySelectorAll("link[rel=stylesheet]");
    for (var i = 0; i < links.length; i += 1) {
      if (links[i].href === href || links[i].hasAttribute("data-lsl-css")) return;
    }
    doc.head.appendChild(h("link", { rel: "stylesheet", href: href, "data-lsl-css": true }));
  };

  LoginSiteLock.prototype._build = function () {
    var self = this;
    var doc = root.document;
    var modal = !this.options.container;
    var titleId = this.id + "-title";
    var card = h("div", {
      className: "lsl-card",
      role: modal ? "dialog" : "region",
      "aria-modal": modal ? "true" : null,
      "aria-labelledby": titleId,
      tabindex: "-1"
    });
    var nodes = {
      card: card,
      logo: h("div", { className: "lsl-logo" }),
      title: h("h2", { className: "lsl-title", id: titleId }),
      lead: h("p", { className: "lsl-lead", id: this.id + "-lead" }),
      alert: h("div", { className: "lsl-alert lsl-empty", id: this.id + "-error", role: "alert" }),
      status: h("div", { className: "lsl-status lsl-empty", role: "status", "aria-live": "polite" }),
      body: h("div", { className: "lsl-body" }),
      previousFocus: doc.activeElement
    };
    if (this.options.closable) {
      append(card, h("button", {
        type: "button", className: "lsl-close", "aria-label": this.t.close,
        on: { click: function () { self.hide(); } }
      }, "×"));
    }
    append(card, [
      h("header", { className: "lsl-header" }, nodes.logo, nodes.title, nodes.lead),
      nodes.alert,
      nodes.status,
      nodes.body
    ]);
    var outer;
    if (modal) {
      outer = h("div", { className: "lsl-root lsl-overlay", "data-lsl": this.id, lang: this.options.language }, card);
      doc.body.appendChild(outer);
      card.focus();
      doc.documentElement.classList.add("lsl-modal-open");
      card.addEventListener("keydown", function (event) { self._trapKey(event); });
      nodes.onFocusIn = function (event) {
        if (self._nodes && !card.contains(event.target)) self._focusFirst();
      };
      doc.addEventListener("focusin", nodes.onFocusIn, true);
    } else {
      var container = typeof this.options.container === "string"
        ? doc.getElementById(this.options.container) : this.options.container;
      if (!container) throw new Error("container not found: " + this.options.container);
      outer = h("div", { className: "lsl-root lsl-inline", "data-lsl": this.id, lang: this.options.language }, card);
      container.appendChild(outer);
    }
    nodes.outer = outer;
    this._nodes = nodes;
    this._applyTheme();
  };

  /** Tab stays in the dialog; Escape closes it when it may be closed. */
  LoginSiteLock.prototype._trapKey = function (event) {
    if (event.key === "Escape" && this.options.closable) {
      event.preventDefault();
      this.hide();
      return;
    }
    if (event.key !== "Tab") return;
    var items = this._focusable();
    if (!items.length) return;
    var first = items[0];
    var last = items[items.length - 1];
    var active = root.document.activeElement;
    if (event.shiftKey && (active === first || active === this._nodes.card)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && active === last) {
      event.preventDefault();
      first.focus();
    }
  };

  LoginSiteLock.prototype._focusable = function () {
    var list = this._nodes.card.querySelectorAll(FOCUSABLE);
    return Array.prototype.filter.call(list, function (node) {
      return !node.closest("[hidden]") && node.getClientRects().length > 0;
    });
  };

  LoginSiteLock.prototype._focusFirst = function () {
    if (!this._nodes) return;
    var body = this._nodes.body;
    var target = body.querySelector("[aria-invalid=true]") || body.querySelector("input:not([type=hidden])");
    if (target && !target.value) {
      target.focus();
      return;
    }
    var inputs = body.querySelectorAll("input:not([type=hidden])");
    for (var i = 0; i < inputs.length; i += 1) {
      if (!inputs[i].value) {
        inputs[i].focus();
        return;
      }
    }
    var any = target || this._focusable()[0];
    (any || this._nodes.card).focus();
  };

  LoginSiteLock.prototype._applyTheme = function () {
    var colour = safeColour(this.options.theme.primaryColor);
    if (colour) this._nodes.outer.style.setProperty("--lsl-primary", colour); // CSSOM: CSP-safe
  };

  LoginSiteLock.prototype._applyBranding = function () {
    var branding = this._config.branding || {};
    if (!safeColour(this.options.theme.primaryColor) && safeColour(branding.primary_color)) {
      this._nodes.outer.style.setProperty("--lsl-primary", branding.primary_color);
    }
  };

  // --- screens --------------------------------------------------------------------------------

  LoginSiteLock.prototype._database = function () {
    return this._config && this._config.database[0] || null;
  };

  LoginSiteLock.prototype._signUpAllowed = function () {
    var db = this._database();
    return !!(db && db.showSignup && this.options.allowSignUp);
  };

  LoginSiteLock.prototype._forgotAllowed = function () {
    var db = this._database();
    return !!(db && db.showForgot && this.options.allowForgotPassword);
  };

  LoginSiteLock.prototype._initialScreen = function () {
    var wanted = this.options.initialScreen;
    if (wanted === "signUp" && this._signUpAllowed()) return "signUp";
    if (wanted === "forgotPassword" && this._forgotAllowed()) return "forgotPassword";
    return "login";
  };

  LoginSiteLock.prototype._setScreen = function (screen, keepMessages) {
    this._state.screen = screen;
    if (!keepMessages) {
      this._state.error = null;
      this._state.info = null;
    }
    this._state.values.password = "";
    this._state.sent = false;
    this._state.invalid = null;
    this._render();
    if (this.options.autofocus) this._focusFirst();
    var ready = { login: "signin ready", signUp: "signup ready", forgotPassword: "forgot_password ready" };
    if (ready[screen]) this._emit(ready[screen]);
  };

  LoginSiteLock.prototype._render = function () {
    var n = this._nodes;
    if (!n) return;
    var t = this.t;
    var state = this._state;
    var config = this._config;
    var appName = config ? (config.name || this.clientId) : "";
    clear(n.logo);
    var logo = safeImageUrl(this.options.theme.logo) ||
      safeImageUrl(config && config.branding && config.branding.logo_url);
    if (logo) {
      append(n.logo, h("img", { src: logo, alt: "", className: "lsl-logo-image" }));
    } else {
      var name = t.title || (config && config.tenantName) || "";
      append(n.logo, h("div", { className: "lsl-mark", "aria-hidden": "true" }, name.slice(0, 1).toUpperCase()));
    }
    var titles = {
      forgotPassword: t.forgotTitle,
      passwordless: t.passwordlessTitle,
      code: t.codeTitle
    };
    n.title.textContent = titles[state.screen] || t.title || (config && config.tenantName) || t.loginTab;
    var leads = {
      login: format(t.loginSubtitle, [appName]),
      signUp: format(t.signUpSubtitle, [appName]),
      forgotPassword: t.forgotInstructions
    };
    n.lead.textContent = config ? (leads[state.screen] || "") : "";
    this._renderMessages();
    clear(n.body);
    var screens = {
      loading: this._loadingScreen,
      unavailable: this._unavailableScreen,
      login: this._loginScreen,
      signUp: this._signUpScreen,
      forgotPassword: this._forgotScreen,
      passwordless: this._passwordlessScreen,
      code: this._codeScreen
    };
    append(n.body, (screens[state.screen] || this._loginScreen).call(this));
    n.card.setAttribute("aria-busy", state.busy || state.screen === "loading" ? "true" : "false");
    n.card.setAttribute("data-screen", state.screen);
  };

  LoginSiteLock.prototype._renderMessages = function () {
    var n = this._nodes;
    var state = this._state;
    clear(n.alert);
    if (state.error) {
      append(n.alert, h("p", { text: state.error.message }));
      if (state.error.items && state.error.items.length) {
        append(n.alert, h("ul", null, state.error.items.map(function (item) {
          return h("li", { text: item });
        })));
      }
    }
    n.alert.classList.toggle("lsl-empty", !state.error);
    var status = state.busy ? (state.busyText || this.t.busy) : state.info;
    n.status.textContent = status || "";
    n.status.classList.toggle("lsl-empty", !status);
    n.status.classList.toggle("lsl-success", !state.busy && !!state.info);
  };

  LoginSiteLock.prototype._loadingScreen = function () {
    return h("div", { className: "lsl-loading" }, h("span", { className: "lsl-spinner", "aria-hidden": "true" }),
      h("span", { text: this.t.loading }));
  };

  LoginSiteLock.prototype._unavailableScreen = function () {
    return null;
  };

  LoginSiteLock.prototype._field = function (name, label, attrs) {
    var self = this;
    var id = this.id + "-" + name;
    var input = h("input", Object.assign({
      id: id,
      name: name,
      value: this._state.values[name] || "",
      autocapitalize: "none",
      spellcheck: "false",
      required: true,
      on: {
        input: function () {
          self._state.values[name] = input.value;
          input.removeAttribute("aria-invalid");
          if (attrs && attrs.onInput) attrs.onInput(input.value);
        }
      }
    }, attrs && attrs.input));
    if (this._state.invalid === name) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", this._nodes.alert.id);
    }
    return h("div", { className: "lsl-field" }, h("label", { for: id, text: label }), input);
  };

  LoginSiteLock.prototype._submit = function (label) {
    return h("button", {
      type: "submit",
      className: "lsl-button lsl-primary",
      disabled: this._state.busy,
      "aria-disabled": this._state.busy ? "true" : null
    }, this._state.busy ? h("span", { className: "lsl-spinner", "aria-hidden": "true" }) : null,
    h("span", { text: this._state.busy ? this.t.busy : label }));
  };

  LoginSiteLock.prototype._link = function (label, onClick, className) {
    return h("button", {
      type: "button",
      className: "lsl-link " + (className || ""),
      disabled: this._state.busy,
      on: { click: onClick }
    }, label);
  };

  LoginSiteLock.prototype._form = function (name, onSubmit, children) {
    var self = this;
    return h("form", {
      className: "lsl-form",
      novalidate: true,
      "data-form": name,
      "aria-busy": this._state.busy ? "true" : "false",
      on: {
        submit: function (event) {
          event.preventDefault();
          if (!self._state.busy) onSubmit.call(self, event);
        }
      }
    }, children);
  };

  LoginSiteLock.prototype._tabs = function () {
    var self = this;
    if (!this._signUpAllowed()) return null;
    var screen = this._state.screen;
    function tab(target, label) {
      return h("button", {
        type: "button",
        className: "lsl-tab",
        "aria-current": screen === target ? "page" : null,
        disabled: self._state.busy,
        on: { click: function () { if (screen !== target) self._setScreen(target); } }
      }, label);
    }
    return h("nav", { className: "lsl-tabs", "aria-label": this.t.tabsLabel },
      tab("login", this.t.loginTab), tab("signUp", this.t.signUpTab));
  };

  LoginSiteLock.prototype._connectionButtons = function () {
    var self = this;
    var config = this._config;
    var list = config.social.concat(config.enterprise);
    if (this.options.mode === "redirect") {
      list = config.database.concat(config.passwordless, list);
    }
    return list.map(function (conn) {
      var label = format(self.t.socialButton, [conn.displayName]);
      if (conn.kind === "database") label = self.t.databaseRedirectButton;
      if (conn.kind === "passwordless") {
        label = conn.strategy === "sms" ? self.t.passwordlessSmsButton : self.t.passwordlessEmailButton;
      }
      return h("button", {
        type: "button",
        className: "lsl-button lsl-secondary lsl-connection",
        "data-connection": conn.name,
        "data-strategy": conn.strategy,
        disabled: self._state.busy,
        on: { click: function () { self._startRedirect(conn, {}); } }
      }, h("span", { text: label }));
    });
  };

  LoginSiteLock.prototype._loginScreen = function () {
    var self = this;
    var t = this.t;
    var config = this._config;
    var db = this._database();
    var buttons = this._connectionButtons();
    var parts = [];
    if (!buttons.length && !db && !config.passwordless.length) {
      return h("p", { className: "lsl-lead", text: t["error.noConnection"] });
    }
    if (this.options.mode === "redirect") {
      parts.push(h("div", { className: "lsl-connections" }, buttons));
      if (db && this._signUpAllowed()) {
        parts.push(h("p", { className: "lsl-links" }, this._link(t.signUpRedirectButton, function () {
          self._startRedirect(db, { screen_hint: "signup", prompt: "login" });
        })));
      }
      return parts;
    }
    if (db) parts.push(this._tabs());
    if (buttons.length) parts.push(h("div", { className: "lsl-connections" }, buttons));
    if (db) {
      if (buttons.length) parts.push(h("div", { className: "lsl-divider", role: "separator" }, h("span", { text: t.or })));
      var identifierLabel = db.requiresUsername ? t.usernameOrEmailLabel : t.emailLabel;
      parts.push(this._form("login", this._submitLogin, [
        this._field("username", identifierLabel, { input: {
          type: db.requiresUsername ? "text" : "email",
          autocomplete: "username"
        } }),
        this._field("password", t.passwordLabel, { input: {
          type: "password", autocomplete: "current-password", autocapitalize: null, spellcheck: null
        } }),
        this._forgotAllowed() ? h("p", { className: "lsl-links lsl-links-end" },
          this._link(t.forgotLink, function () { self._setScreen("forgotPassword"); })) : null,
        this._submit(t.loginSubmit)
      ]));
      if (config.passwordless.length) {
        parts.push(h("div", { className: "lsl-divider", role: "separator" }, h("span", { text: t.or })));
        parts.push(h("div", { className: "lsl-connections" }, config.passwordless.map(function (conn) {
          return h("button", {
            type: "button",
            className: "lsl-button lsl-secondary lsl-connection",
            "data-connection": conn.name,
            "data-strategy": conn.strategy,
            disabled: self._state.busy,
            on: { click: function () { self._passwordless = conn; self._setScreen("passwordless"); } }
          }, conn.strategy === "sms" ? t.passwordlessSmsButton : t.passwordlessEmailButton);
        })));
      }
    } else if (config.passwordless.length) {
      if (buttons.length) parts.push(h("div", { className: "lsl-divider", role: "separator" }, h("span", { text: t.or })));
      this._passwordless = this._passwordless || config.passwordless[0];
      parts.push(this._passwordlessForm());
    }
    return parts;
  };

  LoginSiteLock.prototype._policyList = function (rules) {
    var t = this.t;
    var checked = checkPassword(rules, this._state.values.password);
    return h("ul", {
      className: "lsl-policy",
      id: this.id + "-policy",
      "aria-live": "polite",
      "aria-label": t.policyTitle
    }, checked.map(function (rule) {
      function line(text, verified) {
        return [
          h("span", { text: text }),
          verified ? h("span", { className: "lsl-visually-hidden", text: " " + t.policyMet }) : null
        ];
      }
      return h("li", { className: rule.verified ? "lsl-met" : null, "data-code": rule.code },
        line(describeRule(t, rule), rule.verified),
        rule.items ? h("ul", null, rule.items.map(function (item) {
          return h("li", { className: item.verified ? "lsl-met" : null, "data-class": item.code },
            line(t["policy." + item.code], item.verified));
        })) : null);
    }));
  };

  LoginSiteLock.prototype._signUpScreen = function () {
    var self = this;
    var t = this.t;
    var db = this._database();
    if (!db) return this._loginScreen();
    var policy = this._policyList(db.passwordRules);
    var fields = [
      this._field("email", t.emailLabel, { input: { type: "email", autocomplete: "email" } })
    ];
    if (db.requiresUsername) {
      fields.push(this._field("username", t.usernameLabel, { input: { type: "text", autocomplete: "username" } }));
    }
    fields.push(this._field("password", t.passwordLabel, {
      input: {
        type: "password", autocomplete: "new-password", autocapitalize: null, spellcheck: null,
        "aria-describedby": policy.id
      },
      onInput: function () {
        var fresh = self._policyList(db.passwordRules);
        policy.parentNode.replaceChild(fresh, policy);
        policy = fresh;
      }
    }));
    fields.push(policy);
    fields.push(this._submit(t.signUpSubmit));
    return [this._tabs(), this._form("signUp", this._submitSignUp, fields)];
  };

  LoginSiteLock.prototype._forgotScreen = function () {
    var self = this;
    var t = this.t;
    var back = h("p", { className: "lsl-links" }, this._link(t.backLink, function () { self._setScreen("login"); }));
    if (this._state.sent) return back;
    return [
      this._form("forgotPassword", this._submitForgot, [
        this._field("email", t.emailLabel, { input: { type: "email", autocomplete: "email" } }),
        this._submit(t.forgotSubmit)
      ]),
      back
    ];
  };

  LoginSiteLock.prototype._passwordlessForm = function () {
    var t = this.t;
    var conn = this._passwordless;
    var sms = conn.strategy === "sms";
    return [
      h("p", { className: "lsl-lead", text: sms ? t.passwordlessSmsInstructions : t.passwordlessEmailInstructions }),
      this._form("passwordless", this._submitPasswordless, [
        sms
          ? this._field("phone", t.phoneLabel, { input: { type: "tel", autocomplete: "tel", placeholder: "+15555550100" } })
          : this._field("email", t.emailLabel, { input: { type: "email", autocomplete: "email" } }),
        this._submit(t.passwordlessSubmit)
      ])
    ];
  };

  LoginSiteLock.prototype._passwordlessScreen = function () {
    var self = this;
    this._passwordless = this._passwordless || this._config.passwordless[0];
    var parts = this._passwordlessForm();
    if (this._database()) {
      parts.push(h("p", { className: "lsl-links" }, this._link(this.t.backLink, function () { self._setScreen("login"); })));
    }
    return parts;
  };

  LoginSiteLock.prototype._codeScreen = function () {
    var self = this;
    var t = this.t;
    var conn = this._passwordless;
    var recipient = conn.strategy === "sms" ? this._state.values.phone : this._state.values.email;
    return [
      h("p", { className: "lsl-lead", text: format(t.codeInstructions, [recipient]) }),
      this._form("code", this._submitCode, [
        this._field("code", t.codeLabel, { input: {
          type: "text", inputmode: "numeric", autocomplete: "one-time-code", maxlength: "12"
        } }),
        this._submit(t.codeSubmit)
      ]),
      h("p", { className: "lsl-links" }, this._link(t.resendCode, function () { self._setScreen("passwordless"); }))
    ];
  };

  // --- actions --------------------------------------------------------------------------------

  LoginSiteLock.prototype._busy = function (on, text) {
    this._state.busy = on;
    this._state.busyText = text || null;
    if (on) {
      this._state.error = null;
      this._state.info = null;
      this._state.invalid = null;
    }
    this._render();
  };

  /** A readable error in the alert region, focus on the field concerned. */
  LoginSiteLock.prototype._fail = function (error, context, field) {
    this._state.busy = false;
    if (field === "password" || field === "code") this._state.values[field] = "";
    this._state.error = describeError(this.t, error, context);
    this._state.invalid = field || null;
    this._render();
    if (this._nodes) this._focusFirst();
  };

  /** Client-side checks before any request; returns false after showing the error. */
  LoginSiteLock.prototype._require = function (checks) {
    for (var i = 0; i < checks.length; i += 1) {
      var check = checks[i];
      var value = (this._state.values[check.field] || "").trim();
      if (!value) {
        this._state.error = { message: format(this.t["error.required"], [check.label]), items: [] };
      } else if (check.pattern && !check.pattern.test(value)) {
        this._state.error = { message: this.t[check.message], items: [] };
      } else {
        continue;
      }
      this._state.invalid = check.field;
      this._render();
      this._focusFirst();
      return false;
    }
    return true;
  };

  LoginSiteLock.prototype._submitLogin = function () {
    var db = this._database();
    var t = this.t;
    var values = this._state.values;
    if (!this._require([
      { field: "username", label: db.requiresUsername ? t.usernameOrEmailLabel : t.emailLabel },
      { field: "password", label: t.passwordLabel }
    ])) return;
    this._credentialLogin(db, {
      credential_type: PASSWORD_REALM,
      username: values.username.trim(),
      password: values.password,
      realm: db.name
    }, "login");
  };

  /** POST /co/authenticate, then the login_ticket at /authorize (compat §8). */
  LoginSiteLock.prototype._credentialLogin = function (conn, credentials, context, openedPopup) {
    var self = this;
    var popup = openedPopup !== undefined ? openedPopup : this._openPopup();
    if (popup === false) return;
    this._busy(true);
    var body = Object.assign({ client_id: this.clientId }, credentials);
    request(this.base + "/co/authenticate", { json: body, credentials: "include" })
      .then(function (answer) {
        storeCoVerifier(root, coVerifierKey(self.origin, answer.co_id), answer.co_verifier);
        return self._authorize(conn, { login_ticket: answer.login_ticket, realm: conn.name }, popup);
      })
      .catch(function (error) {
        if (popup) popup.close();
        self._fail(error, context, context === "code" ? "code" : "password");
        self._emit("authorization_error", self._publicError(error));
      });
  };

  LoginSiteLock.prototype._submitSignUp = function () {
    var self = this;
    var db = this._database();
    var t = this.t;
    var values = this._state.values;
    var checks = [{ field: "email", label: t.emailLabel, pattern: EMAIL, message: "error.invalidEmail" }];
    if (db.requiresUsername) checks.push({ field: "username", label: t.usernameLabel });
    checks.push({ field: "password", label: t.passwordLabel });
    if (!this._require(checks)) return;
    var unmet = checkPassword(db.passwordRules, values.password).filter(function (r) { return !r.verified; });
    if (unmet.length) {
      this._fail({ code: "invalid_password", name: "PasswordStrengthError", rules: unmet }, "signUp", "password");
      return;
    }
    var body = {
      client_id: this.clientId,
      connection: db.name,
      email: values.email.trim(),
      password: values.password
    };
    if (db.requiresUsername) body.username = values.username.trim();
    var popup = this.options.loginAfterSignUp ? this._openPopup() : null;
    if (popup === false) return;
    this._busy(true);
    request(this.base + "/dbconnections/signup", { json: body })
      .then(function (answer) {
        self._emit("signup success", answer);
        if (!self.options.loginAfterSignUp) {
          self._state.busy = false;
          self._state.values.username = body.username || body.email;
          self._state.info = t.signUpSuccess;
          self._setScreen("login", true);
          return;
        }
        // Lock's loginAfterSignUp: the same credentials, embedded.
        self._state.busy = false;
        self._credentialLogin(db, {
          credential_type: PASSWORD_REALM,
          username: body.email,
          password: body.password,
          realm: db.name
        }, "login", popup);
      })
      .catch(function (error) {
        if (popup) popup.close();
        self._fail(error, "signUp", error.code === "invalid_password" ? "password" : "email");
        self._emit("signup error", self._publicError(error));
      });
  };

  LoginSiteLock.prototype._submitForgot = function () {
    var self = this;
    var t = this.t;
    if (!this._require([{ field: "email", label: t.emailLabel, pattern: EMAIL, message: "error.invalidEmail" }])) return;
    var email = this._state.values.email.trim();
    this._busy(true);
    request(this.base + "/dbconnections/change_password", {
      json: { client_id: this.clientId, connection: this._database().name, email: email }
    }).then(function () {
      self._state.busy = false;
      self._state.sent = true;
      self._state.info = t.forgotSuccess;
      self._render();
      self._focusFirst();
      self._emit("forgot_password success");
    }).catch(function (error) {
      self._fail(error, "forgotPassword", "email");
      self._emit("forgot_password error", self._publicError(error));
    });
  };

  LoginSiteLock.prototype._submitPasswordless = function () {
    var self = this;
    var t = this.t;
    var conn = this._passwordless;
    var sms = conn.strategy === "sms";
    var ok = sms
      ? this._require([{ field: "phone", label: t.phoneLabel, pattern: E164, message: "error.invalidPhone" }])
      : this._require([{ field: "email", label: t.emailLabel, pattern: EMAIL, message: "error.invalidEmail" }]);
    if (!ok) return;
    var body = { client_id: this.clientId, connection: conn.name, send: "code" };
    if (sms) body.phone_number = this._state.values.phone.trim();
    else body.email = this._state.values.email.trim();
    this._busy(true);
    request(this.base + "/passwordless/start", { json: body })
      .then(function () {
        self._state.busy = false;
        self._state.values.code = "";
        self._setScreen("code");
        self._emit("passwordless start", { connection: conn.name });
      })
      .catch(function (error) {
        self._fail(error, "passwordless", sms ? "phone" : "email");
      });
  };

  LoginSiteLock.prototype._submitCode = function () {
    var conn = this._passwordless;
    if (!this._require([{ field: "code", label: this.t.codeLabel }])) return;
    var values = this._state.values;
    this._credentialLogin(conn, {
      credential_type: PASSWORDLESS_OTP,
      username: (conn.strategy === "sms" ? values.phone : values.email).trim(),
      otp: values.code.trim(),
      realm: conn.name
    }, "code");
  };

  /** A connection the hosted flow finishes: a redirect, or a popup with web_message. */
  LoginSiteLock.prototype._startRedirect = function (conn, extra) {
    var self = this;
    var popup = this._openPopup();
    if (popup === false) return;
    this._busy(true, this.t.redirecting);
    this._authorize(conn, extra, popup).catch(function (error) {
      if (popup) popup.close();
      self._fail(error);
    });
  };

  /** `false` when a popup was needed and the browser refused it (the error is shown). */
  LoginSiteLock.prototype._openPopup = function () {
    if (this.options.auth.redirect) return null;
    // Opened now, in the click's task, or the browser blocks it; pointed at /authorize later.
    var popup = root.open("", this.id + "-popup", "width=500,height=640");
    if (!popup) {
      this._fail({ code: "popup_blocked" });
      return false;
    }
    return popup;
  };

  LoginSiteLock.prototype._newTransaction = function (conn, popup) {
    var params = this.options.auth.params;
    var tx = {
      clientId: this.clientId,
      state: params.state || randomString(32),
      nonce: params.nonce || randomString(32),
      redirectUri: this.options.auth.redirectUrl,
      connection: conn ? conn.name : null,
      popup: !!popup
    };
    if (this.options.auth.pkce && this.options.auth.responseType === "code") {
      tx.codeVerifier = randomString(48);
    }
    if (params.max_age !== undefined) tx.maxAge = Number(params.max_age);
    return tx;
  };

  LoginSiteLock.prototype._authorize = function (conn, extra, popup) {
    var self = this;
    var auth = this.options.auth;
    var tx = this._newTransaction(conn, popup);
    var challenge = tx.codeVerifier ? pkceChallenge(tx.codeVerifier) : Promise.resolve(null);
    return challenge.then(function (codeChallenge) {
      var params = {};
      Object.keys(auth.params).forEach(function (key) {
        if (AUTHORIZE_RESERVED.indexOf(key) < 0) params[key] = auth.params[key];
      });
      Object.assign(params, {
        client_id: self.clientId,
        response_type: auth.responseType,
        redirect_uri: tx.redirectUri,
        scope: auth.params.scope || "openid profile email",
        state: tx.state,
        nonce: tx.nonce,
        code_challenge: codeChallenge,
        code_challenge_method: codeChallenge ? "S256" : null,
        response_mode: popup ? "web_message" : auth.responseMode,
        ui_locales: auth.params.ui_locales || self.options.language,
        connection: conn && !(extra && extra.login_ticket) ? conn.name : null
      }, extra || {});
      var url = withQuery(self.base + "/authorize", params);
      if (popup) return self._popupFlow(popup, url, tx);
      self.transactions.save(tx);
      self._state.busyText = self.t.redirecting;
      self._renderMessages();
      root.location.assign(url);
      return null;
    });
  };

  /** response_mode=web_message: login_site's page posts the response to this window. */
  LoginSiteLock.prototype._popupFlow = function (popup, url, tx) {
    var self = this;
    return new Promise(function (resolve, reject) {
      var timer = setInterval(function () {
        if (popup.closed) {
          finish();
          reject({ code: "popup_closed" });
        }
      }, 500);
      function finish() {
        clearInterval(timer);
        root.removeEventListener("message", onMessage);
      }
      function onMessage(event) {
        var data = event.data;
        if (event.origin !== self.origin || event.source !== popup) return;
        if (!data || data.type !== "authorization_response" || !data.response) return;
        if (data.response.state !== tx.state) return;
        finish();
        popup.close();
        resolve(data.response);
      }
      root.addEventListener("message", onMessage);
      popup.location.href = url;
    }).then(function (response) {
      return self._complete(response, tx);
    }).then(function (result) {
      self._state.busy = false;
      self.hide();
      self._emit("authenticated", result);
    });
  };

  // --- the way back ---------------------------------------------------------------------------

  /** The redirect back (response_mode query or fragment) of a login this browser began. */
  LoginSiteLock.prototype._resumeFromLocation = function () {
    var self = this;
    var location = root.location;
    var params = parseParams(location.search);
    var inFragment = false;
    if (!params.state || (!params.code && !params.error)) {
      params = parseParams(location.hash);
      inFragment = true;
      if (!params.state || (!params.code && !params.error)) return Promise.resolve(null);
    }
    var pending = this.transactions.peek(params.state);
    if (!pending || pending.clientId !== this.clientId) return Promise.resolve(null);
    var tx = this.transactions.take(params.state);
    this._cleanLocation(inFragment);
    this._emit("hash_parsed", params);
    if (!tx) {
      this._emit("authorization_error", this._publicError({ code: "invalid_state" }));
      return Promise.resolve(null);
    }
    return this._complete(params, tx).then(function (result) {
      self._emit("authenticated", result);
      return result;
    }, function (error) {
      var shown = self._publicError(error);
      if (self._nodes) self._fail(error);
      self._emit("authorization_error", shown);
      return null;
    });
  };

  LoginSiteLock.prototype._cleanLocation = function (inFragment) {
    var location = root.location;
    var keep = parseParams(location.search);
    if (!inFragment) {
      ["code", "state", "error", "error_description", "iss"].forEach(function (k) { delete keep[k]; });
    }
    var url = withQuery(location.pathname, keep);
    try {
      root.history.replaceState(root.history.state, "", url);
    } catch (e) { /* not allowed: harmless */ }
  };

  /** Check the authorization response, redeem the code (PKCE), check the ID token. */
  LoginSiteLock.prototype._complete = function (response, tx) {
    var self = this;
    if (response.state !== tx.state) return Promise.reject({ code: "invalid_state" });
    // RFC 9207: a response naming another issuer is a mix-up, whatever it holds.
    if (response.iss && response.iss !== this.issuer) return Promise.reject({ code: "invalid_state" });
    if (response.error) {
      return Promise.reject({ code: response.error, description: response.error_description || "" });
    }
    if (!tx.codeVerifier) {
      // A server-side application redeems the code itself.
      return Promise.resolve({ code: response.code, state: tx.state });
    }
    return request(this.base + "/oauth/token", {
      form: {
        grant_type: "authorization_code",
        client_id: this.clientId,
        code: response.code,
        redirect_uri: tx.redirectUri,
        code_verifier: tx.codeVerifier
      }
    }).then(function (tokens) {
      var payload = null;
      if (tokens.id_token) {
        payload = validateIdToken(decodeJwt(tokens.id_token).payload, {
          issuer: self.issuer, clientId: self.clientId, nonce: tx.nonce, maxAge: tx.maxAge
        });
      }
      return {
        accessToken: tokens.access_token,
        idToken: tokens.id_token,
        idTokenPayload: payload,
        refreshToken: tokens.refresh_token,
        expiresIn: tokens.expires_in,
        tokenType: tokens.token_type,
        scope: tokens.scope,
        state: tx.state
      };
    }).catch(function (error) {
      if (error instanceof Error) throw { code: "invalid_token", description: error.message };
      throw error;
    });
  };

  LoginSiteLock.prototype._publicError = function (error) {
    var shown = describeError(this.t, error);
    return {
      error: error.code,
      errorDescription: typeof error.description === "string" ? error.description : shown.message,
      message: shown.message
    };
  };

  /** Promise-based with an optional Node-style callback, as Lock's. */
  LoginSiteLock.prototype.getUserInfo = function (accessToken, callback) {
    var promise = request(this.base + "/userinfo", { method: "GET", bearer: accessToken });
    if (typeof callback === "function") {
      promise.then(function (profile) { callback(null, profile); }, function (error) { callback(error); });
    }
    return promise;
  };

  LoginSiteLock.prototype.logout = function (options) {
    options = options || {};
    root.location.assign(withQuery(this.base + "/v2/logout", {
      client_id: options.clientID || this.clientId,
      returnTo: options.returnTo
    }));
  };

  LoginSiteLock.crossOriginVerification = function (win) {
    crossOriginVerification(win);
  };

  // For the unit tests (tests/widget/*.test.mjs); not a public API.
  LoginSiteLock.internals = {
    dictionary: dictionary,
    DICTIONARIES: DICTIONARIES,
    format: format,
    base64UrlEncode: base64UrlEncode,
    base64UrlDecode: base64UrlDecode,
    randomString: randomString,
    pkceChallenge: pkceChallenge,
    baseUrl: baseUrl,
    originOf: originOf,
    withQuery: withQuery,
    parseParams: parseParams,
    kindOf: kindOf,
    parseConfig: parseConfig,
    checkPassword: checkPassword,
    describeRule: describeRule,
    normalizeError: normalizeError,
    describeError: describeError,
    decodeJwt: decodeJwt,
    validateIdToken: validateIdToken,
    Transactions: Transactions,
    coVerifierKey: coVerifierKey,
    storeCoVerifier: storeCoVerifier,
    takeCoVerifier: takeCoVerifier,
    crossOriginVerification: crossOriginVerification
  };

  root.LoginSiteLock = LoginSiteLock;
})(typeof window !== "undefined" ? window : globalThis);

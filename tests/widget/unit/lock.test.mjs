// Unit tests of static/lock/lock.js: the widget's logic without a browser.
// Run: node --test tests/widget/unit/   (Node 20's built-in runner, no dependencies)
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCE_PATH = join(HERE, "..", "..", "..", "static", "lock", "lock.js");
const SOURCE = readFileSync(SOURCE_PATH, "utf8");
// The code without its comments (which may name what the code avoids).
const CODE = SOURCE.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
createRequire(import.meta.url)(SOURCE_PATH); // a classic script: defines globalThis.LoginSiteLock
const Lock = globalThis.LoginSiteLock;
const L = Lock.internals;

const en = L.dictionary("en");
const fr = L.dictionary("fr");

function jwt(payload, header = { alg: "RS256", typ: "JWT", kid: "k1" }) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part(header)}.${part(payload)}.c2lnbmF0dXJl`;
}

class MemoryStorage {
  constructor() { this.items = new Map(); }
  getItem(k) { return this.items.has(k) ? this.items.get(k) : null; }
  setItem(k, v) { this.items.set(k, String(v)); }
  removeItem(k) { this.items.delete(k); }
}

describe("randomness and PKCE", () => {
  it("draws state, nonce and verifiers from crypto.getRandomValues", () => {
    const original = globalThis.crypto.getRandomValues.bind(globalThis.crypto);
    let calls = 0;
    globalThis.crypto.getRandomValues = (array) => { calls += 1; return original(array); };
    try {
      const value = L.randomString(32);
      assert.equal(calls, 1);
      assert.match(value, /^[A-Za-z0-9_-]{43}$/);
    } finally {
      globalThis.crypto.getRandomValues = original;
    }
  });

  it("never repeats a random string", () => {
    const seen = new Set(Array.from({ length: 200 }, () => L.randomString(32)));
    assert.equal(seen.size, 200);
  });

  it("computes the S256 challenge of RFC 7636 appendix B", async () => {
    const challenge = await L.pkceChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    assert.equal(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
  });

  it("makes verifiers of 64 characters, within RFC 7636's 43 to 128", () => {
    assert.equal(L.randomString(48).length, 64);
  });
});

describe("URLs", () => {
  it("uses an http domain as is and prefixes a bare one with https", () => {
    assert.equal(L.baseUrl("login.example.com"), "https://login.example.com");
    assert.equal(L.baseUrl("http://t1.localhost:5000/"), "http://t1.localhost:5000");
    assert.throws(() => L.baseUrl(""));
  });

  it("leaves empty parameters out of a query and encodes the rest", () => {
    const url = L.withQuery("https://x.test/authorize", {
      a: "1 2", b: "", c: null, d: undefined, e: "é&=",
    });
    assert.equal(url, "https://x.test/authorize?a=1%202&e=%C3%A9%26%3D");
  });

  it("reads query and fragment parameters and skips malformed escapes", () => {
    assert.deepEqual(L.parseParams("?code=a+b&state=%2Fx&bad=%E0%A4%A"), { code: "a b", state: "/x" });
    assert.deepEqual(L.parseParams("#origin=http%3A//t1.localhost%3A5000"), {
      origin: "http://t1.localhost:5000",
    });
  });

  it("takes the origin of a URL", () => {
    assert.equal(L.originOf("HTTP://T1.localhost:5000/x?y"), "http://t1.localhost:5000");
  });
});

describe("client configuration", () => {
  const raw = {
    id: "widget",
    name: "Widget",
    tenant: "t1",
    tenant_name: "Tenant One",
    strategies: [
      { name: "auth0", connections: [{ name: "db", showSignup: false, requires_username: true,
        passwordRules: [{ code: "lengthAtLeast", format: [8] }] }] },
      { name: "github", connections: [{ name: "gh" }] },
      { name: "email", connections: [{ name: "email" }] },
      { name: "samlp", connections: [{ name: "acme", display_name: "Acme SSO" }] },
      { name: "some-future-social", connections: [{ name: "future" }] },
      { name: 42, connections: [{ name: "ignored" }] },
    ],
  };

  it("sorts connections by kind as Lock does", () => {
    const config = L.parseConfig(raw);
    assert.deepEqual(config.database.map((c) => c.name), ["db"]);
    assert.deepEqual(config.social.map((c) => c.name), ["gh", "future"]);
    assert.deepEqual(config.passwordless.map((c) => c.name), ["email"]);
    assert.deepEqual(config.enterprise.map((c) => c.name), ["acme"]);
    assert.equal(config.tenantName, "Tenant One");
  });

  it("keeps the database connection's sign-up, forgot and username settings", () => {
    const [db] = L.parseConfig(raw).database;
    assert.equal(db.showSignup, false);
    assert.equal(db.showForgot, true);
    assert.equal(db.requiresUsername, true);
    assert.deepEqual(db.passwordRules, [{ code: "lengthAtLeast", format: [8] }]);
  });

  it("names social buttons after the provider or the display name", () => {
    const config = L.parseConfig(raw);
    assert.equal(config.social[0].displayName, "GitHub");
    assert.equal(config.enterprise[0].displayName, "Acme SSO");
  });

  it("shows only allowedConnections when the page restricts them", () => {
    const config = L.parseConfig(raw, ["gh"]);
    assert.deepEqual([...config.database, ...config.social, ...config.passwordless].map((c) => c.name), ["gh"]);
  });

  it("copes with an empty or broken configuration", () => {
    const config = L.parseConfig(null);
    assert.deepEqual(config.database, []);
    assert.deepEqual(L.parseConfig({ strategies: "no" }).social, []);
  });
});

describe("password policy hints", () => {
  const good = [{ code: "lengthAtLeast", format: [10] }, { code: "containsAtLeast", format: [3, 4] }];
  const fair = [{ code: "lengthAtLeast", format: [8] }, { code: "containsAtLeast", format: [3, 3] }];
  const excellent = [...good, { code: "identicalChars", format: [2, "aaa"] }];
  const verified = (rules, pw) => L.checkPassword(rules, pw).map((r) => r.verified);

  it("checks length and three of four character classes (good)", () => {
    assert.deepEqual(verified(good, "short1A"), [false, true]);
    assert.deepEqual(verified(good, "longenough"), [true, false]);
    assert.deepEqual(verified(good, "longenough1!"), [true, true]);
  });

  it("needs lower, upper and digits for fair, and lists three classes", () => {
    const [, contains] = L.checkPassword(fair, "abcdefgh1!");
    assert.equal(contains.verified, false);
    assert.deepEqual(contains.items.map((i) => i.code), ["lowerCase", "upperCase", "numbers"]);
    assert.deepEqual(verified(fair, "abcdefG1"), [true, true]);
  });

  it("refuses three identical characters in a row (excellent)", () => {
    assert.deepEqual(verified(excellent, "Abcdefgh1!"), [true, true, true]);
    assert.deepEqual(verified(excellent, "Abcdefff1!"), [true, true, false]);
  });

  it("describes the rules in English and French", () => {
    assert.equal(L.describeRule(en, { code: "lengthAtLeast", format: [10] }), "At least 10 characters");
    assert.equal(L.describeRule(fr, { code: "lengthAtLeast", format: [10] }), "Au moins 10 caractères");
    assert.equal(
      L.describeRule(en, { code: "containsAtLeast", format: [3, 4] }),
      "At least 3 of the following 4 types of characters:",
    );
  });
});

describe("languages", () => {
  it("has every English text in French", () => {
    const missing = Object.keys(L.DICTIONARIES.en).filter((k) => !(k in L.DICTIONARIES.fr));
    assert.deepEqual(missing, []);
  });

  it("falls back to English for an unknown language", () => {
    assert.equal(L.dictionary("xx").loginSubmit, "Log in");
  });

  it("lets languageDictionary override single texts, strings only", () => {
    const t = L.dictionary("fr", { loginSubmit: "Entrer", title: "Acme", signUpTab: 3 });
    assert.equal(t.loginSubmit, "Entrer");
    assert.equal(t.title, "Acme");
    assert.equal(t.signUpTab, "Inscription");
  });

  it("fills %d and %s in order", () => {
    assert.equal(L.format("a %d b %s c", [1, "x"]), "a 1 b x c");
    assert.equal(L.format("%s", []), "");
  });
});

describe("errors", () => {
  it("reads Auth0's legacy database shape", () => {
    const e = L.normalizeError(400, { name: "PasswordStrengthError", code: "invalid_password",
      description: { rules: [{ code: "lengthAtLeast", format: [8], verified: false }], verified: false },
      statusCode: 400 });
    assert.equal(e.code, "invalid_password");
    assert.equal(e.name, "PasswordStrengthError");
    assert.equal(e.rules.length, 1);
  });

  it("reads the OAuth shape and plain text", () => {
    assert.deepEqual(
      [L.normalizeError(403, { error: "access_denied", error_description: "Wrong email or password." }).code],
      ["access_denied"],
    );
    const text = L.normalizeError(403, null, "Origin http://x is not allowed.");
    assert.equal(text.code, "http_403");
    assert.equal(text.description, "Origin http://x is not allowed.");
    assert.equal(L.normalizeError(429, null, "").code, "too_many_requests");
  });

  it("words a wrong password the same for every account", () => {
    const shown = L.describeError(en, { code: "access_denied", description: "Wrong email or password." });
    assert.equal(shown.message, "Wrong email or password.");
    assert.equal(L.describeError(fr, { code: "access_denied" }).message, "E-mail ou mot de passe incorrect.");
  });

  it("says a wrong code on the code screen", () => {
    assert.equal(L.describeError(en, { code: "access_denied" }, "code").message, "Wrong or expired code.");
  });

  it("lists the unmet password rules of a sign-up refusal in the widget's language", () => {
    const error = L.normalizeError(400, { name: "PasswordStrengthError", code: "invalid_password",
      description: { rules: [
        { code: "lengthAtLeast", format: [10], verified: false, message: "At least %d characters in length" },
        { code: "containsAtLeast", format: [3, 4], verified: true },
      ] } });
    const shown = L.describeError(fr, error);
    assert.equal(shown.message, "Le mot de passe ne respecte pas les règles :");
    assert.deepEqual(shown.items, ["Au moins 10 caractères"]);
  });

  it("has a message for each named password refusal", () => {
    for (const name of ["PasswordDictionaryError", "PasswordNoUserInfoError", "PasswordHistoryError"]) {
      const shown = L.describeError(en, { code: "invalid_password", name, description: "x" });
      assert.notEqual(shown.message, "x");
      assert.deepEqual(shown.items, []);
    }
  });

  it("names the page's origin when the server refused it", () => {
    const shown = L.describeError(en, { code: "origin", description: "http://127.0.0.1:30124" });
    assert.match(shown.message, /http:\/\/127\.0\.0\.1:30124/);
    assert.match(shown.message, /allowed origins/);
  });

  it("shows the server's own words for a code it does not know", () => {
    assert.equal(L.describeError(en, { code: "bad.connection", description: "Connection is disabled" }).message,
      "Connection is disabled");
    assert.equal(L.describeError(en, { code: "weird", description: { x: 1 } }).message, en["error.unknown"]);
  });
});

describe("ID token checks (OIDC Core 3.1.3.7)", () => {
  const now = Date.UTC(2025, 0, 1) ;
  const seconds = Math.floor(now / 1000);
  const good = { iss: "http://t1.localhost:5000/", aud: "widget", exp: seconds + 600, iat: seconds, nonce: "n1", sub: "auth0|1" };
  const expected = { issuer: "http://t1.localhost:5000/", clientId: "widget", nonce: "n1", now };

  it("decodes a JWT's header and payload", () => {
    const { header, payload } = L.decodeJwt(jwt({ ...good, name: "Zoë" }));
    assert.equal(header.alg, "RS256");
    assert.equal(payload.name, "Zoë");
    assert.throws(() => L.decodeJwt("a.b"), /invalid_token/);
  });

  it("accepts a token for this client, issuer and nonce", () => {
    assert.equal(L.validateIdToken(good, expected).sub, "auth0|1");
  });

  for (const [claim, value] of [
    ["iss", "http://evil.test/"], ["aud", "other"], ["nonce", "n2"], ["exp", seconds - 3600], ["iat", undefined],
  ]) {
    it(`refuses a token with a wrong ${claim}`, () => {
      assert.throws(() => L.validateIdToken({ ...good, [claim]: value }, expected), new RegExp(`invalid_token: ${claim}`));
    });
  }

  it("needs azp when the token has several audiences", () => {
    assert.throws(() => L.validateIdToken({ ...good, aud: ["widget", "api"] }, expected), /azp/);
    assert.ok(L.validateIdToken({ ...good, aud: ["widget", "api"], azp: "widget" }, expected));
  });

  it("checks auth_time against max_age", () => {
    const withMax = { ...expected, maxAge: 60 };
    assert.throws(() => L.validateIdToken(good, withMax), /auth_time/);
    assert.throws(() => L.validateIdToken({ ...good, auth_time: seconds - 3600 }, withMax), /max_age/);
    assert.ok(L.validateIdToken({ ...good, auth_time: seconds - 10 }, withMax));
  });
});

describe("login transactions", () => {
  it("are spent once", () => {
    const tx = new L.Transactions(new MemoryStorage());
    tx.save({ state: "s1", nonce: "n" });
    assert.equal(tx.peek("s1").nonce, "n");
    assert.equal(tx.take("s1").nonce, "n");
    assert.equal(tx.take("s1"), null);
  });

  it("expire after an hour", () => {
    let clock = 0;
    const tx = new L.Transactions(new MemoryStorage(), () => clock);
    tx.save({ state: "s1" });
    clock = 60 * 60 * 1000 + 1;
    assert.equal(tx.take("s1"), null);
  });

  it("are kept in sessionStorage, never localStorage", () => {
    assert.doesNotMatch(CODE, /localStorage/);
  });
});

describe("cross-origin verification (compat §8)", () => {
  const LOGIN_SITE = "http://t1.localhost:5000";

  it("uses auth0.js's storage key", () => {
    assert.equal(L.coVerifierKey(LOGIN_SITE, "abc"), "co/verifier/http%3A%2F%2Ft1.localhost%3A5000/abc");
  });

  function fakeWindow(storage, cookie = "") {
    const parent = { messages: [], postMessage(message, origin) { this.messages.push({ message, origin }); } };
    const listeners = [];
    const win = {
      location: { hash: `#origin=${encodeURIComponent(LOGIN_SITE)}` },
      sessionStorage: storage,
      parent,
      isSecureContext: true,
      document: { cookie },
      addEventListener(type, fn) { if (type === "message") listeners.push(fn); },
      dispatch(event) { listeners.forEach((fn) => fn(event)); },
    };
    return win;
  }

  it("says ready to login_site's page, then hands over the verifier once", () => {
    const storage = new MemoryStorage();
    storage.setItem(L.coVerifierKey(LOGIN_SITE, "co1"), "verifier-1");
    const win = fakeWindow(storage);
    L.crossOriginVerification(win);
    assert.deepEqual(win.parent.messages, [{ message: { type: "ready" }, origin: LOGIN_SITE }]);
    const request = { origin: LOGIN_SITE, source: win.parent, data: { type: "co_verifier_request", request: { id: "co1" } } };
    win.dispatch(request);
    win.dispatch(request);
    assert.deepEqual(win.parent.messages.slice(1).map((m) => [m.message.response.verifier, m.origin]), [
      ["verifier-1", LOGIN_SITE],
      [null, LOGIN_SITE],
    ]);
  });

  it("answers nothing to another origin or another window", () => {
    const storage = new MemoryStorage();
    storage.setItem(L.coVerifierKey(LOGIN_SITE, "co1"), "verifier-1");
    const win = fakeWindow(storage);
    L.crossOriginVerification(win);
    const other = { messages: [], postMessage(m, o) { this.messages.push([m, o]); } };
    win.dispatch({ origin: "http://evil.test", source: win.parent, data: { type: "co_verifier_request", request: { id: "co1" } } });
    win.dispatch({ origin: LOGIN_SITE, source: other, data: { type: "co_verifier_request", request: { id: "co1" } } });
    assert.equal(win.parent.messages.length, 1);
    assert.equal(other.messages.length, 0);
    assert.equal(storage.getItem(L.coVerifierKey(LOGIN_SITE, "co1")), "verifier-1");
  });

  it("finds a verifier kept in a cookie and clears it", () => {
    const key = L.coVerifierKey(LOGIN_SITE, "co2");
    const jar = [];
    const win = {
      isSecureContext: true,
      document: {
        get cookie() { return jar.map((c) => c.split(";")[0]).filter((c) => !c.endsWith("=")).join("; "); },
        set cookie(value) { jar.push(value); },
      },
    };
    L.storeCoVerifier(win, key, "verifier-2");
    assert.match(jar[0], /SameSite=None; Secure/);
    assert.match(jar[0], /Max-Age=900/);
    assert.equal(L.takeCoVerifier(win, new MemoryStorage(), key), "verifier-2");
    assert.match(jar.at(-1), /Max-Age=0/);
  });
});

describe("the source", () => {
  it("never parses HTML or evaluates strings (safe under a strict CSP)", () => {
    for (const pattern of [/innerHTML/, /outerHTML/, /insertAdjacentHTML/, /document\.write/, /\beval\(/,
      /new Function/, /setAttribute\(\s*["']style/, /setTimeout\(\s*["']/, /setAttribute\(\s*["']on/]) {
      assert.doesNotMatch(CODE, pattern);
    }
  });

  it("declares its version", () => {
    assert.match(Lock.version, /^1\.\d+\.\d+$/);
    assert.match(SOURCE, new RegExp(`LoginSiteLock ${Lock.version.replace(/\./g, "\\.")} `));
  });

  it("refuses to start without a client id or a domain", () => {
    assert.throws(() => new Lock("", "x.test"), /clientId/);
    assert.throws(() => new Lock("c", ""), /domain/);
  });
});

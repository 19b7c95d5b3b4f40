// The benchmark's peer: panva's oidc-provider in one Node process, in-memory adapter,
// RS256 keys, Auth0-like paths, and the clients, user and API of bench/tenant.yaml
// (bench/fixture.py passes them as JSON in PEER_CONFIG).
//
// The login interaction is a minimal handler of our own: a form with username and
// password, the password checked with argon2id at login_site's parameters, and the
// grant recorded at login (first-party client: no consent screen, as in login_site).
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';

import { hash, verify, Algorithm } from '@node-rs/argon2';
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.PEER_CONFIG);
const issuer = `http://127.0.0.1:${config.port}`;
const argon2 = {
  algorithm: Algorithm.Argon2id,
  memoryCost: config.argon2.memory_cost_kib,
  timeCost: config.argon2.time_cost,
  parallelism: config.argon2.parallelism,
};

const user = config.user;
const passwordHash = await hash(user.password, argon2);
const api = config.api;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'bench-rs256' };

const clients = config.clients.map((c) => ({
  client_id: c.client_id,
  client_secret: c.client_secret,
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: c.grant_types,
  redirect_uris: c.redirect_uris,
  response_types: c.redirect_uris.length ? ['code'] : [],
}));

const DAY = 24 * 60 * 60;

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [jwk] },
  cookies: { keys: [config.cookie_key] },
  routes: {
    authorization: '/authorize',
    token: '/oauth/token',
    userinfo: '/userinfo',
    jwks: '/.well-known/jwks.json',
  },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'updated_at'],
  },
  // Profile claims in the ID token too, as login_site (and Auth0) put them.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (ctx, indicator) => {
        if (indicator !== api.identifier) throw new Provider.errors.InvalidTarget();
        return {
          scope: api.scopes.join(' '),
          audience: api.identifier,
          accessTokenTTL: api.token_lifetime,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  rotateRefreshToken: () => true,
  findAccount: async (ctx, sub) => (sub === user.user_id ? account : undefined),
  ttl: {
    AccessToken: DAY,
    AuthorizationCode: 60,
    ClientCredentials: api.token_lifetime,
    IdToken: 36000,
    Interaction: 3600,
    Grant: 14 * DAY,
    RefreshToken: 30 * DAY,
    Session: 7 * DAY,
  },
  interactions: { url: async (ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError: async (ctx, out) => {
    ctx.type = 'application/json';
    ctx.body = out;
  },
});

const account = {
  accountId: user.user_id,
  async claims() {
    return {
      sub: user.user_id,
      email: user.email,
      email_verified: true,
      name: user.name,
      given_name: user.given_name,
      family_name: user.family_name,
      updated_at: Math.floor(Date.now() / 1000),
    };
  },
};

// The first few token-endpoint errors go to the log, with the detail clients do not see.
let grantErrors = 0;
provider.on('grant.error', (ctx, err) => {
  grantErrors += 1;
  if (grantErrors <= 5) console.error(`grant.error: ${err.message}: ${err.error_detail ?? ''}`);
});

function page(res, status, title, body) {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  res.end(`<!doctype html><html><head><title>${title}</title></head><body>${body}</body></html>`);
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString())));
    req.on('error', reject);
  });
}

async function grantFor(details) {
  const { params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session?.accountId ?? user.user_id, clientId: params.client_id });
  grant.addOIDCScope(params.scope);
  if (params.resource) grant.addResourceScope(params.resource, api.scopes.join(' '));
  return grant.save();
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return page(res, 400, 'Error', '<p>Unknown interaction.</p>');
  if (req.method === 'GET') {
    if (details.prompt.name === 'login') {
      return page(res, 200, 'Log in', `<form method="post" action="/interaction/${uid}/login">
<input name="username" type="email"><input name="password" type="password">
<button type="submit">Continue</button></form>`);
    }
    return page(res, 200, 'Allow', `<form method="post" action="/interaction/${uid}/confirm">
<button type="submit">Allow</button></form>`);
  }
  const form = await readForm(req);
  if (action === 'login') {
    const ok = form.get('username') === user.email
      && await verify(passwordHash, form.get('password') || '', argon2);
    if (!ok) return page(res, 400, 'Log in', '<p>Wrong email or password.</p>');
    details.session = { accountId: user.user_id };
    const grantId = await grantFor(details);
    return provider.interactionFinished(req, res, {
      login: { accountId: user.user_id },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
  }
  const grantId = await grantFor(details);
  return provider.interactionFinished(req, res, { consent: { grantId } }, {
    mergeWithLastSubmission: true,
  });
}

const INTERACTION = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm))?$/;
const callback = provider.callback();

const server = http.createServer((req, res) => {
  const match = INTERACTION.exec(req.url);
  if (!match) return callback(req, res);
  return interaction(req, res, match[1], match[2]).catch((err) => {
    page(res, 500, 'Error', `<p>${String(err.message).replace(/[<>&]/g, '')}</p>`);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`peer listening on ${issuer}\n`);
});

// A real OpenID provider for gatekeeper's end-to-end tests: panva's oidc-provider (OpenID
// Certified), pinned in package.json, on 127.0.0.1 only. Install once: npm ci --prefix tests/oidc
//
//   node tests/oidc/provider.mjs [PORT]        # PORT (or OIDC_PORT); 0 or absent = any free port
//
// Prints one JSON line on stdout when it serves, e.g.
//   {"ready":true,"issuer":"http://127.0.0.1:PORT","port":PORT,"client_id":"gatekeeper",...}
//
// Users (username / password → sub, roles):
//   alice / alice-password → sub "alice-0001", roles ["admin", "user"], alice@example.test
//   bob   / bob-password   → sub "bob-0002",   roles ["user"],          bob@example.test
//
// Client: one confidential client (client_secret_basic or client_secret_post), code flow only,
// PKCE S256 required, grants authorization_code + refresh_token, refresh tokens rotated on every
// use (a reused one is refused and revokes the whole grant). ID tokens RS256 (ES256 key in the
// JWKS too). `roles` and `email` are in the ID token and at userinfo (conformIdTokenClaims off);
// `roles` rides on scope openid, so it is always there.
//
// Login: a minimal HTML form (no script, no external assets) at /interaction/UID, then a consent
// form the first time a client asks for scopes. A "Cancel" link ends with error=access_denied.
// RP-initiated logout (/session/end) and back-channel logout are enabled.
//
// Environment (all optional):
//   OIDC_PORT                        port, when not given as the first argument
//   OIDC_CLIENT_ID                   default "gatekeeper"
//   OIDC_CLIENT_SECRET               default "gatekeeper-test-secret"
//   OIDC_REDIRECT_URIS               JSON list, default ["http://127.0.0.1:4180/oauth2/callback"]
//   OIDC_POST_LOGOUT_REDIRECT_URIS   JSON list, default []
//   OIDC_BACKCHANNEL_LOGOUT_URI      the client's back-channel logout URI, default none
//   OIDC_ACCESS_TOKEN_TTL            seconds, default 300
//   OIDC_ID_TOKEN_TTL                seconds, default 3600
//   OIDC_REFRESH_TOKEN_TTL           seconds, default 86400
//   OIDC_ID_TOKEN_ALG                RS256 (default) or ES256, the client's ID token algorithm
//   OIDC_REFRESH_TOKENS              "always" (default: every code grant of the client gets one) or
//                                    "offline_access" (the spec's rule: scope offline_access and
//                                    prompt=consent, OIDC Core 1.0 §11)
//   OIDC_CLIENT_JWKS                 a JSON JWKS (public keys): the client then authenticates with
//                                    private_key_jwt (RFC 7523 §2.2) signed by one of them, at the
//                                    token endpoint and (its default) at introspection; no secret
//   OIDC_JWT_ACCESS_TOKEN_AUDIENCE   when set, access tokens are JWTs (RFC 9068) for this audience,
//                                    carrying `roles` (resource indicator urn:gatekeeper:test-api,
//                                    the default); they are then not accepted at userinfo
//   OIDC_TOKEN_EXCHANGE_AUDIENCES    JSON list; when set, the client may use RFC 8693 token exchange
//                                    (grant urn:ietf:params:oauth:grant-type:token-exchange, which
//                                    oidc-provider does not ship: registered below) to trade an
//                                    access token of its own (a JWT for OIDC_JWT_ACCESS_TOKEN_AUDIENCE,
//                                    checked with the provider's key, or an opaque one from its
//                                    store) for a JWT access token whose aud is the `audience` asked
//                                    for, one of these. GET /test/token-exchange/count says how many
//                                    exchange requests arrived (a test counts its cache misses).

import {
  createPublicKey, generateKeyPairSync, randomBytes, verify,
} from 'node:crypto';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const USERS = [
  {
    username: 'alice', password: 'alice-password', sub: 'alice-0001',
    name: 'Alice Admin', email: 'alice@example.test', roles: ['admin', 'user'],
  },
  {
    username: 'bob', password: 'bob-password', sub: 'bob-0002',
    name: 'Bob User', email: 'bob@example.test', roles: ['user'],
  },
];

const env = process.env;

function jsonList(name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = JSON.parse(raw);
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw new Error(`${name} must be a JSON list of strings, got ${raw}`);
  }
  return value;
}

function seconds(name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

const settings = {
  port: Number(process.argv[2] ?? env.OIDC_PORT ?? 0),
  clientId: env.OIDC_CLIENT_ID || 'gatekeeper',
  clientSecret: env.OIDC_CLIENT_SECRET || 'gatekeeper-test-secret',
  redirectUris: jsonList('OIDC_REDIRECT_URIS', ['http://127.0.0.1:4180/oauth2/callback']),
  postLogoutRedirectUris: jsonList('OIDC_POST_LOGOUT_REDIRECT_URIS', []),
  backchannelLogoutUri: env.OIDC_BACKCHANNEL_LOGOUT_URI || undefined,
  accessTokenTtl: seconds('OIDC_ACCESS_TOKEN_TTL', 300),
  idTokenTtl: seconds('OIDC_ID_TOKEN_TTL', 3600),
  refreshTokenTtl: seconds('OIDC_REFRESH_TOKEN_TTL', 86400),
  idTokenAlg: env.OIDC_ID_TOKEN_ALG || 'RS256',
  refreshTokens: env.OIDC_REFRESH_TOKENS || 'always',
  jwtAudience: env.OIDC_JWT_ACCESS_TOKEN_AUDIENCE || undefined,
  // With the audience above: 'opaque' issues opaque access tokens for it (introspected, RFC 7662).
  accessTokenFormat: env.OIDC_ACCESS_TOKEN_FORMAT || 'jwt',
  // '1': the introspection (RFC 7662) and revocation (RFC 7009) endpoints are served.
  introspection: env.OIDC_INTROSPECTION === '1',
  exchangeAudiences: jsonList('OIDC_TOKEN_EXCHANGE_AUDIENCES', []),
  clientJwks: env.OIDC_CLIENT_JWKS ? JSON.parse(env.OIDC_CLIENT_JWKS) : undefined,
};
if (settings.clientJwks !== undefined && !Array.isArray(settings.clientJwks.keys)) {
  throw new Error('OIDC_CLIENT_JWKS: a JSON JWKS, {"keys": [...]}');
}
if (!['jwt', 'opaque'].includes(settings.accessTokenFormat)) {
  throw new Error('OIDC_ACCESS_TOKEN_FORMAT: jwt or opaque');
}
if (!['RS256', 'ES256'].includes(settings.idTokenAlg)) throw new Error('OIDC_ID_TOKEN_ALG: RS256 or ES256');
if (!['always', 'offline_access'].includes(settings.refreshTokens)) {
  throw new Error('OIDC_REFRESH_TOKENS: always or offline_access');
}

function signingKey(kid, type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

// Fresh keys per process: a restarted provider is a key rotation, as it would be for real.
const jwks = {
  keys: [
    signingKey('rs256-1', 'rsa', { modulusLength: 2048 }, 'RS256'),
    signingKey('es256-1', 'ec', { namedCurve: 'P-256' }, 'ES256'),
  ],
};

const RESOURCE = 'urn:gatekeeper:test-api';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const bySub = new Map(USERS.map((user) => [user.sub, user]));
const byUsername = new Map(USERS.map((user) => [user.username, user]));

const escapeHtml = (value) => String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:22em;margin:3em auto}label,input,button{display:block;width:100%;margin:.3em 0}[role=alert]{color:#b00}</style>
</head>
<body><h1>${escapeHtml(title)}</h1>
${body}
</body>
</html>`;
}

const configuration = {
  clients: [{
    client_id: settings.clientId,
    ...(settings.clientJwks ? {
      token_endpoint_auth_method: 'private_key_jwt', // introspection's method follows it
      jwks: settings.clientJwks,
    } : {
      client_secret: settings.clientSecret,
      token_endpoint_auth_method: 'client_secret_basic', // client_secret_post is accepted too
    }),
    client_name: 'gatekeeper (tests)',
    application_type: 'web',
    redirect_uris: settings.redirectUris,
    post_logout_redirect_uris: settings.postLogoutRedirectUris,
    grant_types: ['authorization_code', 'refresh_token',
      ...(settings.exchangeAudiences.length ? [TOKEN_EXCHANGE] : [])],
    response_types: ['code'],
    id_token_signed_response_alg: settings.idTokenAlg,
    ...(settings.backchannelLogoutUri ? {
      backchannel_logout_uri: settings.backchannelLogoutUri,
      backchannel_logout_session_required: true,
    } : {}),
  }],
  // Each client authenticates with any method the provider supports; these two are what we serve.
  clientAuthMethods: ['client_secret_basic', 'client_secret_post',
    ...(settings.clientJwks ? ['private_key_jwt'] : [])],
  jwks,
  cookies: {
    keys: [randomBytes(32).toString('base64url')],
    // op_ names: cookies are per host, not per port, and gatekeeper shares 127.0.0.1 with us.
    names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_resume' },
    // Plain http: SameSite=None cookies without Secure are dropped by Chromium, so Lax everywhere.
    long: { signed: true, httpOnly: true, sameSite: 'lax' },
    short: { signed: true, httpOnly: true, sameSite: 'lax' },
  },
  claims: {
    openid: ['sub', 'roles'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    acr: null, sid: null, auth_time: null, iss: null,
  },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  conformIdTokenClaims: false, // scope-requested claims (roles, email) go in the ID token too
  async findAccount(ctx, sub) {
    const user = bySub.get(sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          roles: user.roles,
          name: user.name,
          preferred_username: user.username,
          email: user.email,
          email_verified: true,
        };
      },
    };
  },
  pkce: { required: () => true, methods: ['S256'] },
  rotateRefreshToken: true,
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && (settings.refreshTokens === 'always' || code.scopes.has('offline_access')),
  ttl: {
    AccessToken: settings.accessTokenTtl,
    AuthorizationCode: 60,
    IdToken: settings.idTokenTtl,
    RefreshToken: settings.refreshTokenTtl,
    Interaction: 600,
    Session: 86400,
    Grant: 86400,
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false }, // ours below checks passwords and loads no external assets
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        // Put the confirm button inside the form, so a plain form submit means "yes".
        const confirm = form.replace('</form>',
          '<button type="submit" name="logout" value="yes">Yes, sign me out</button></form>');
        ctx.body = page('Sign out', `<p>Sign out of ${escapeHtml(ctx.host)}?</p>${confirm}`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<p id="signed-out">You are signed out.</p>');
      },
    },
    backchannelLogout: { enabled: true },
    ...(settings.introspection ? {
      // Only our confidential client may ask (the default policy lets any authenticated one).
      introspection: { enabled: true, allowedPolicy: async (ctx, client) => client.clientId === settings.clientId },
      revocation: { enabled: true },
    } : {}),
    ...(settings.jwtAudience ? {
      resourceIndicators: {
        enabled: true,
        // RFC 8707 wants an absolute URI as the indicator; the token's aud is the configured value.
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, resource) {
          if (resource !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: 'openid profile email',
            audience: settings.jwtAudience,
            accessTokenFormat: settings.accessTokenFormat,
            accessTokenTTL: settings.accessTokenTtl,
            ...(settings.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
          };
        },
      },
    } : {}),
  },
  async extraTokenClaims(ctx, token) {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    return { roles: bySub.get(token.accountId)?.roles ?? [] };
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', Object.entries(out)
      .map(([key, value]) => `<p role="alert"><strong>${escapeHtml(key)}</strong>: ${escapeHtml(value)}</p>`)
      .join('\n'));
  },
  clientBasedCORS: () => false,
};

// --- login and consent (the "interactions") -------------------------------------------------

function send(res, status, html) {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  res.end(html);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new errors.InvalidRequest('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function loginPage(uid, params, error) {
  const hint = params.login_hint ? ` value="${escapeHtml(params.login_hint)}"` : '';
  return page('Sign in', `${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${uid}/login">
<label>Username <input name="username" autocomplete="username" required autofocus${hint}></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
<p><a href="/interaction/${uid}/abort">Cancel</a></p>`);
}

function consentPage(uid, client, details) {
  const scopes = (details.missingOIDCScope ?? []).map((s) => `<li>${escapeHtml(s)}</li>`).join('');
  return page('Allow access', `<p>${escapeHtml(client?.clientName ?? client?.clientId)} asks for:</p>
<ul>${scopes}</ul>
<form method="post" action="/interaction/${uid}/confirm">
<button type="submit">Allow</button>
</form>
<p><a href="/interaction/${uid}/abort">Cancel</a></p>`);
}

async function interaction(provider, req, res, path) {
  const [, , uid, action = ''] = path.split('/'); // /interaction/UID[/ACTION]
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new errors.InvalidRequest('interaction mismatch');
  const { prompt, params } = details;

  if (req.method === 'GET' && action === '') {
    if (prompt.name === 'login') return send(res, 200, loginPage(uid, params));
    if (prompt.name === 'consent') {
      return send(res, 200, consentPage(uid, await provider.Client.find(params.client_id), prompt.details));
    }
    throw new errors.InvalidRequest(`unsupported prompt ${prompt.name}`);
  }
  if (req.method === 'GET' && action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    const user = byUsername.get(form.get('username') ?? '');
    if (!user || user.password !== form.get('password')) {
      return send(res, 200, loginPage(uid, params, 'Invalid username or password.'));
    }
    return provider.interactionFinished(req, res, {
      login: { accountId: user.sub, amr: ['pwd'], remember: true },
    }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scope] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, {
      mergeWithLastSubmission: true,
    });
  }
  return send(res, 405, page('Error', `<p role="alert">${escapeHtml(req.method)} ${escapeHtml(path)} is not allowed now</p>`));
}

// --- RFC 8693 token exchange (OIDC_TOKEN_EXCHANGE_AUDIENCES) ----------------------------------

// The provider's own RS256 key: a subject token that is a JWT must be one this provider signed.
const rs256 = createPublicKey({ key: jwks.keys.find((k) => k.kid === 'rs256-1'), format: 'jwk' });
let exchangeCount = 0;

async function subjectOf(provider, token) {
  const parts = token.split('.');
  if (parts.length === 3) {
    let header;
    let payload;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
      payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    } catch {
      throw new errors.InvalidGrant('subject_token is not a JWT');
    }
    const signed = header.alg === 'RS256' && header.kid === 'rs256-1' && verify(
      'RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), rs256, Buffer.from(parts[2], 'base64url'),
    );
    const now = Math.floor(Date.now() / 1000);
    // Only a token for the API the client guards may be exchanged (it is the client's audience).
    if (!signed || payload.iss !== provider.issuer || typeof payload.exp !== 'number'
      || payload.exp <= now || payload.aud !== settings.jwtAudience || !payload.sub) {
      throw new errors.InvalidGrant('subject_token is invalid, expired or not for this client');
    }
    return { accountId: payload.sub, scope: payload.scope };
  }
  const stored = await provider.AccessToken.find(token);
  if (!stored || stored.isExpired || !stored.accountId) {
    throw new errors.InvalidGrant('subject_token is invalid or expired');
  }
  return { accountId: stored.accountId, scope: stored.scope };
}

async function tokenExchange(ctx, next) {
  exchangeCount += 1;
  const { params, client } = ctx.oidc;
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('subject_token_type must be an access token');
  }
  if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('only access tokens are issued');
  }
  presenceOf(params, 'subject_token');
  const subject = await subjectOf(ctx.oidc.provider, params.subject_token);
  if (!params.audience || !settings.exchangeAudiences.includes(params.audience)) {
    throw new errors.InvalidTarget('audience is not one this provider issues exchanged tokens for');
  }
  const granted = new Set((subject.scope ?? '').split(' ').filter(Boolean));
  const scope = (params.scope ?? '').split(' ').filter((s) => granted.has(s)).join(' ') || undefined;
  const token = new ctx.oidc.provider.AccessToken({
    accountId: subject.accountId, client, gty: 'token_exchange', scope,
  });
  token.resourceServer = new ctx.oidc.provider.ResourceServer(`urn:gatekeeper:exchange:${params.audience}`, {
    audience: params.audience,
    scope: scope ?? '',
    accessTokenFormat: 'jwt',
    accessTokenTTL: settings.accessTokenTtl,
    jwt: { sign: { alg: 'RS256' } },
  });
  ctx.oidc.entity('AccessToken', token);
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: token.expiration,
    ...(scope ? { scope } : {}),
  };
  await next();
}

function presenceOf(params, name) {
  if (!params[name]) throw new errors.InvalidRequest(`missing required parameter '${name}'`);
}

// --- serve ----------------------------------------------------------------------------------

function log(event, fields) {
  process.stderr.write(`${JSON.stringify({ event, ...fields })}\n`);
}

// Listen first (port 0 picks a free one), then build the provider with the real issuer URL.
let handler = (req, res) => send(res, 503, 'starting');
const server = createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(settings.port, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, configuration);
if (settings.exchangeAudiences.length) {
  if (!settings.jwtAudience) throw new Error('OIDC_TOKEN_EXCHANGE_AUDIENCES needs OIDC_JWT_ACCESS_TOKEN_AUDIENCE');
  // Before any client is used: static clients are checked against the grant types lazily.
  provider.registerGrantType(TOKEN_EXCHANGE, tokenExchange, [
    'subject_token', 'subject_token_type', 'audience', 'resource', 'scope', 'requested_token_type',
    'actor_token', 'actor_token_type']);
}

for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error',
  'end_session.error', 'backchannel.error', 'introspection.error', 'revocation.error']) {
  provider.on(event, (...args) => {
    const err = args.find((arg) => arg instanceof Error);
    log(event, { error: err?.error ?? err?.name, description: err?.error_description ?? err?.message });
  });
}
provider.on('backchannel.success', (ctx, client, accountId, sid) => {
  log('backchannel.success', { client: client.clientId, accountId, sid });
});

const callback = provider.callback();
handler = (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  if (path === '/test/token-exchange/count' && req.method === 'GET') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({ count: exchangeCount }));
  }
  if (!path.startsWith('/interaction/')) return callback(req, res);
  return interaction(provider, req, res, path).catch((err) => {
    log('interaction.error', { error: err.error ?? err.name, description: err.error_description ?? err.message });
    if (!res.headersSent) {
      send(res, err.statusCode ?? 500, page('Error', `<p role="alert">${escapeHtml(err.error ?? 'server_error')}: ${escapeHtml(err.error_description ?? err.message)}</p>`));
    }
  });
};

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}

process.stdout.write(`${JSON.stringify({
  ready: true,
  issuer,
  port,
  client_id: settings.clientId,
  client_secret: settings.clientSecret,
  redirect_uris: settings.redirectUris,
  post_logout_redirect_uris: settings.postLogoutRedirectUris,
  users: USERS.map(({ username, password, sub, email, roles }) => ({ username, password, sub, email, roles })),
})}\n`);

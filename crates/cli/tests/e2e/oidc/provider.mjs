// A minimal OpenID provider for certhub's sign-in tests (oidc-provider 8.8.1, Node.js 20).
//
// Environment:
//   OIDC_PORT           port to listen on (127.0.0.1 only)
//   OIDC_ISSUER         issuer URL, e.g. http://127.0.0.1:PORT (use the same host everywhere)
//   OIDC_CLIENT_ID      the one confidential client (client_secret_basic)
//   OIDC_CLIENT_SECRET
//   OIDC_REDIRECT_URI   its single redirect URI
//   OIDC_USERS_FILE     a JSON file: {"alice":{"groups":["admins"],"email":"a@x"},...}, read at
//                       each sign-in (a test changes a user's claims by rewriting it); the
//                       login name is the subject (sub)
//
// Prints "listening <issuer>" on stdout when ready; everything else goes to stderr.
// Login form: input#login, input#password, button#submit (password is ignored).
import fs from 'node:fs';
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`missing environment variable ${name}`);
  return value;
};
const PORT = Number(env('OIDC_PORT'));
const ISSUER = env('OIDC_ISSUER');
const USERS_FILE = env('OIDC_USERS_FILE');
const users = () => JSON.parse(fs.readFileSync(USERS_FILE, 'utf8'));

// Signing key for ID tokens: a fresh RSA key per run (RS256).
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: env('OIDC_CLIENT_ID'),
    client_secret: env('OIDC_CLIENT_SECRET'),
    redirect_uris: [env('OIDC_REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test-key', use: 'sig', alg: 'RS256' }] },
  cookies: {
    keys: [crypto.randomBytes(32).toString('hex')],
    // Default for the session cookie is SameSite=None, which browsers reject without
    // Secure (plain http here); Lax is enough since all hops are top-level GET redirects.
    long: { sameSite: 'lax' },
  },
  // Scope -> claims. Each key is also a supported scope (so "groups" is a scope).
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // Put scope-requested claims into the ID token too, not only into /me (userinfo).
  conformIdTokenClaims: false,
  pkce: { methods: ['S256'], required: () => true },
  features: { devInteractions: { enabled: false } },
  // Unknown ids yield undefined (no auto-created accounts).
  async findAccount(ctx, id) {
    const all = users();
    const claims = Object.hasOwn(all, id) ? all[id] : undefined;
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ ...claims, sub: id }) };
  },
  // Auto-consent: grant whatever OIDC scopes/claims the client asked for (no consent page).
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
    grant.addOIDCClaims([...ctx.oidc.requestParamClaims]);
    await grant.save();
    return grant;
  },
  // interactions.url defaults to `/interaction/${uid}`, served by handleInteraction below.
});

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const loginPage = (uid, error, login = '') => `<!doctype html>
<html><head><meta charset="utf-8"><title>Sign-in</title></head><body>
<h1>Sign-in</h1>
${error ? `<p id="error">${esc(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${uid}/login">
  <label>Login <input id="login" name="login" value="${esc(login)}" autofocus></label>
  <label>Password <input id="password" name="password" type="password"></label>
  <button id="submit" type="submit">Sign in</button>
</form>
<p><a id="cancel" href="/interaction/${uid}/abort">Cancel</a></p>
</body></html>`;

const readForm = async (req) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
};

// GET  /interaction/:uid        -> login form
// POST /interaction/:uid/login  -> check login, finish (303 back to /auth/:uid) or re-show form
// GET  /interaction/:uid/abort  -> finish with error=access_denied
async function handleInteraction(req, res, uid, action) {
  const send = (status, html) => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(html);
  };
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid || details.prompt.name !== 'login') {
    return send(400, `unexpected interaction ${esc(details.prompt.name)}`);
  }
  if (req.method === 'GET' && !action) return send(200, loginPage(uid));
  if (req.method === 'GET' && action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'login') {
    const login = (await readForm(req)).get('login') ?? '';
    if (!Object.hasOwn(users(), login)) return send(401, loginPage(uid, 'Unknown user', login));
    return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  }
  return send(405, 'method not allowed');
}

for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error', 'userinfo.error']) {
  provider.on(event, (ctx, err) => console.error(`${event}: ${err.name} ${err.message} ${err.error_description ?? ''} ${err.error_detail ?? ''}`));
}

const oidc = provider.callback();
http.createServer((req, res) => {
  const m = req.url.match(/^\/interaction\/([\w-]+)(?:\/(login|abort))?(?:\?.*)?$/);
  if (!m) return oidc(req, res);
  handleInteraction(req, res, m[1], m[2]).catch((err) => {
    // e.g. SessionNotFound when the _interaction cookie is missing/expired
    const msg = err.error_description ?? err.message;
    console.error('interaction error:', err.error_description ? msg : err);
    if (!res.headersSent) res.writeHead(err.statusCode ?? 500, { 'content-type': 'text/plain' });
    res.end(`interaction error: ${msg}`);
  });
}).listen(PORT, '127.0.0.1', () => console.log(`listening ${ISSUER}`));

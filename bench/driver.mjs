// The benchmark's load driver: one Node process, async, keep-alive connections, Node's
// standard library only (so it runs wherever Node does, without npm ci).
//
//   node bench/driver.mjs '<json spec>'
//
// It follows what a browser and a relying party do for a full sign-in: the authorization
// request, every redirect and hosted page (forms read from the HTML, cookies kept per
// user), the callback's state and iss, the code exchange with client_secret_basic and the
// PKCE verifier, and the ID token's signature (JWKS fetched once), iss, aud, nonce and exp.
// The spec's `forms` names the fields the server's hosted forms ask for, in order (oidc-link
// and the forms peer: email then code; the automatic peer: none); a sign-in that fills
// other ones is an error, so no server can skip a step unnoticed.
//
// Phases: signin, refresh, discovery, jwks (timed), and pending (one sign-in stopped where
// it waits for the user, so the caller can measure what a pending flow keeps in Redis).
// Protocol: after any untimed set-up it prints "ready" and waits for a line on stdin, runs
// the timed phase, and prints one JSON line of results.

import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import http from 'node:http';
import { createInterface } from 'node:readline';

const spec = JSON.parse(process.argv[2]);
const issuer = new URL(spec.issuer);
const agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(1, spec.concurrency) });
const basicAuth = 'Basic ' + Buffer.from(
  `${encodeURIComponent(spec.clientId)}:${encodeURIComponent(spec.clientSecret)}`,
).toString('base64');
// Hard bounds whatever the duration says.
const MAX_OPERATIONS = spec.maxOperations ?? 1_000_000;
const MAX_STEPS = 12;

class FlowError extends Error {}

const b64url = (buffer) => buffer.toString('base64url');
const random = (bytes) => b64url(randomBytes(bytes));

function send(method, url, { headers = {}, body, cookies } = {}) {
  const target = new URL(url, issuer);
  if (target.host !== issuer.host) {
    throw new FlowError(`refusing to leave the server under test: ${target.href}`);
  }
  const allHeaders = { ...headers };
  if (cookies && cookies.size) {
    allHeaders.cookie = [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
  if (body !== undefined) {
    allHeaders['content-type'] ??= 'application/x-www-form-urlencoded';
    allHeaders['content-length'] = Buffer.byteLength(body);
  }
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: target.hostname, port: target.port, path: target.pathname + target.search,
        method, headers: allHeaders, agent },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => {
          if (cookies) keepCookies(cookies, response.headers['set-cookie']);
          resolve({
            status: response.statusCode,
            headers: response.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

function keepCookies(jar, setCookies) {
  for (const line of setCookies ?? []) {
    const [pair, ...attributes] = line.split(';');
    const at = pair.indexOf('=');
    const name = pair.slice(0, at).trim();
    const value = pair.slice(at + 1).trim();
    const expired = attributes.some((attribute) => {
      const [key, when] = attribute.trim().split('=');
      return (key.toLowerCase() === 'max-age' && Number(when) <= 0)
        || (key.toLowerCase() === 'expires' && Date.parse(when) < Date.now());
    });
    if (expired || value === '') jar.delete(name); else jar.set(name, value);
  }
}

const unescapeHtml = (text) => text.replaceAll('&amp;', '&').replaceAll('&#34;', '"')
  .replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<')
  .replaceAll('&gt;', '>');

// The POST forms of a hosted page: action and hidden fields.
function formsOf(html) {
  const forms = [];
  for (const match of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)) {
    const action = /\baction="([^"]*)"/.exec(match[1]);
    const method = /\bmethod="([^"]*)"/.exec(match[1]);
    if (!action || (method && method[1].toLowerCase() !== 'post')) continue;
    const fields = {};
    for (const input of match[2].matchAll(/<input\b([^>]*)>/g)) {
      const name = /\bname="([^"]*)"/.exec(input[1]);
      const value = /\bvalue="([^"]*)"/.exec(input[1]);
      if (name) fields[unescapeHtml(name[1])] = value ? unescapeHtml(value[1]) : '';
    }
    forms.push({ action: unescapeHtml(action[1]), fields });
  }
  return forms;
}

// What the person types on each hosted page, by the action of the form it belongs to.
const ANSWERS = [
  { suffix: '/email', field: 'email', value: () => spec.email },
  { suffix: '/code', field: 'code', value: () => spec.code },
];

let jwks = null;

async function loadJwks() {
  const discovery = JSON.parse((await send('GET', '/.well-known/openid-configuration')).body);
  if (discovery.issuer !== spec.issuer) throw new FlowError('discovery names another issuer');
  const keys = JSON.parse((await send('GET', discovery.jwks_uri)).body).keys;
  jwks = { discovery, keys: new Map(keys.map((key) => [key.kid, createPublicKey({ key, format: 'jwk' })])) };
}

function checkIdToken(idToken, nonce) {
  const [header64, payload64, signature64] = idToken.split('.');
  const header = JSON.parse(Buffer.from(header64, 'base64url'));
  if (header.alg !== 'RS256') throw new FlowError(`ID token alg ${header.alg}`);
  const key = jwks.keys.get(header.kid);
  if (!key) throw new FlowError('ID token signed by an unknown key');
  const valid = verify('sha256', Buffer.from(`${header64}.${payload64}`), key,
    Buffer.from(signature64, 'base64url'));
  if (!valid) throw new FlowError('ID token signature is not valid');
  const claims = JSON.parse(Buffer.from(payload64, 'base64url'));
  const now = Date.now() / 1000;
  const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (claims.iss !== spec.issuer) throw new FlowError('ID token iss');
  if (!audience.includes(spec.clientId)) throw new FlowError('ID token aud');
  if (!(claims.exp > now)) throw new FlowError('ID token expired');
  if (nonce !== undefined && claims.nonce !== nonce) throw new FlowError('ID token nonce');
  if (!claims.sub) throw new FlowError('ID token without sub');
  return claims;
}

// A full sign-in by a new user (own cookies): returns the token response and the number of
// HTTP exchanges it took. With stopAtField, it stops on the page that asks for that field;
// with stopBeforePath, before following a redirect to that path: where a flow waits.
async function signIn({ stopAtField, stopBeforePath } = {}) {
  const cookies = new Map();
  const state = random(16);
  const nonce = random(16);
  const verifier = random(32);
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const query = new URLSearchParams({
    response_type: 'code', client_id: spec.clientId, redirect_uri: spec.redirectUri,
    scope: spec.scope, state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
  });
  let exchanges = 1;
  const filled = [];
  let answer = await send('GET', `${jwks.discovery.authorization_endpoint}?${query}`, { cookies });
  for (let step = 0; ; step += 1) {
    if (step > MAX_STEPS) throw new FlowError('too many steps');
    if ([302, 303].includes(answer.status)) {
      const location = new URL(answer.headers.location, issuer).href;
      if (location.startsWith(spec.redirectUri)) {
        const callback = new URL(location).searchParams;
        if (callback.get('error')) throw new FlowError(`callback error ${callback.get('error')}`);
        if (callback.get('state') !== state) throw new FlowError('callback state');
        // RFC 9207 §2.4: the iss parameter, when sent, must be the issuer.
        if (callback.has('iss') && callback.get('iss') !== spec.issuer) {
          throw new FlowError('callback iss');
        }
        if (spec.forms && filled.join() !== spec.forms.join()) {
          throw new FlowError(`filled the forms [${filled}], expected [${spec.forms}]`);
        }
        const tokens = await exchangeCode(callback.get('code'), verifier);
        exchanges += 1;
        checkIdToken(tokens.id_token, nonce);
        return { tokens, exchanges };
      }
      if (stopBeforePath && new URL(location).pathname.startsWith(stopBeforePath)) {
        return { exchanges };
      }
      answer = await send('GET', location, { cookies });
      exchanges += 1;
      continue;
    }
    if (answer.status !== 200) {
      throw new FlowError(`HTTP ${answer.status} at step ${step}: ${answer.body.slice(0, 120)}`);
    }
    const forms = formsOf(answer.body);
    const picked = ANSWERS.map((a) => [a, forms.find((f) => f.action.endsWith(a.suffix))])
      .find(([, form]) => form);
    if (!picked) throw new FlowError(`a page with no form to fill at step ${step}`);
    const [typed, form] = picked;
    if (stopAtField === typed.field) return { exchanges };
    filled.push(typed.field);
    const body = new URLSearchParams({ ...form.fields, [typed.field]: typed.value() }).toString();
    answer = await send('POST', form.action, { cookies, body });
    exchanges += 1;
  }
}

async function exchangeCode(code, verifier) {
  const body = new URLSearchParams({
    grant_type: 'authorization_code', code, redirect_uri: spec.redirectUri,
    code_verifier: verifier,
  }).toString();
  const answer = await send('POST', jwks.discovery.token_endpoint,
    { body, headers: { authorization: basicAuth } });
  if (answer.status !== 200) throw new FlowError(`token HTTP ${answer.status}: ${answer.body}`);
  return JSON.parse(answer.body);
}

async function refresh(user) {
  const body = new URLSearchParams({
    grant_type: 'refresh_token', refresh_token: user.refreshToken,
  }).toString();
  const answer = await send('POST', jwks.discovery.token_endpoint,
    { body, headers: { authorization: basicAuth } });
  if (answer.status !== 200) throw new FlowError(`refresh HTTP ${answer.status}: ${answer.body}`);
  const tokens = JSON.parse(answer.body);
  if (!tokens.refresh_token || !tokens.id_token) throw new FlowError('refresh without tokens');
  checkIdToken(tokens.id_token);
  user.refreshToken = tokens.refresh_token;
}

async function fetchJson(url, check) {
  const answer = await send('GET', url);
  if (answer.status !== 200) throw new FlowError(`HTTP ${answer.status}`);
  check(JSON.parse(answer.body));
}

const OPERATIONS = {
  signin: async (stats) => { stats.exchanges.push((await signIn()).exchanges); },
  refresh: async (stats, user) => refresh(user),
  discovery: async () => fetchJson('/.well-known/openid-configuration', (document) => {
    if (document.issuer !== spec.issuer) throw new FlowError('discovery issuer');
  }),
  jwks: async () => fetchJson(jwks.discovery.jwks_uri, (document) => {
    if (!document.keys?.length) throw new FlowError('empty JWKS');
  }),
};

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function waitForGo() {
  process.stdout.write('ready\n');
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() === 'go') break;
  }
  lines.close();
}

async function main() {
  await loadJwks();
  if (spec.phase === 'pending') {
    const { exchanges } = await signIn({
      stopAtField: spec.pendingAtField, stopBeforePath: spec.pendingBeforePath,
    });
    process.stdout.write(`${JSON.stringify({ phase: 'pending', exchanges })}\n`);
    return;
  }
  const operation = OPERATIONS[spec.phase];
  const users = [];
  for (let i = 0; i < spec.concurrency; i += 1) users.push({});
  if (spec.phase === 'refresh') {
    // Untimed: each user signs in once to hold a refresh token of its own.
    await Promise.all(users.map(async (user) => {
      const { tokens } = await signIn();
      if (!tokens.refresh_token) throw new FlowError('no refresh token issued');
      user.refreshToken = tokens.refresh_token;
    }));
  }
  await waitForGo();
  const stats = { latencies: [], exchanges: [], errors: 0, errorSamples: [] };
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + spec.duration * 1000;
  let launched = 0;
  await Promise.all(users.map(async (user) => {
    while (performance.now() < deadline && launched < MAX_OPERATIONS) {
      launched += 1;
      const t0 = performance.now();
      try {
        await operation(stats, user);
        stats.latencies.push(performance.now() - t0);
      } catch (error) {
        stats.errors += 1;
        if (stats.errorSamples.length < 5) stats.errorSamples.push(String(error.message));
        if (spec.phase === 'refresh') {
          // A failed refresh may have spent the token: sign in again for a new one.
          try { user.refreshToken = (await signIn()).tokens.refresh_token; } catch { break; }
        }
      }
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const sorted = stats.latencies.sort((a, b) => a - b);
  const exchanges = stats.exchanges.length
    ? stats.exchanges.reduce((a, b) => a + b, 0) / stats.exchanges.length : null;
  process.stdout.write(`${JSON.stringify({
    phase: spec.phase,
    concurrency: spec.concurrency,
    completed: sorted.length,
    errors: stats.errors,
    errorSamples: stats.errorSamples,
    seconds,
    perSecond: sorted.length / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    exchangesPerSignIn: exchanges,
    driverCpuMs: (cpu.user + cpu.system) / 1000,
  })}\n`);
  agent.destroy();
}

main().catch((error) => {
  process.stderr.write(`driver failed: ${error.stack}\n`);
  process.exit(1);
});

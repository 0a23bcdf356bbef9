// The forms peer: node-oidc-provider (configured in peer_server.mjs) with the sign-in a Node
// developer would write for oidc-link's product, the same two forms on plain node:http and
// template literals. 7 HTTP exchanges per sign-in: authorize -> 303, the email form, its
// POST -> 303, the code form, its POST -> 303, the provider's resume -> 303 to the client,
// the token request.
//
//   GET  /interaction/:uid        the email form
//   POST /interaction/:uid/email  looks the email up in the Redis set of sandbox users,
//                                 keeps the pending verification in the interaction, 303
//   GET  /interaction/:uid/code   the code form
//   POST /interaction/:uid/code   the sandbox code 000000 saves a grant and finishes
//
// A bench peer, not a product: the forms carry no CSRF token (the interaction cookie and the
// interaction's own expiry are all that bind them), and no SMS is sent.

import { timingSafeEqual } from 'node:crypto';

import { ACCOUNT_ID, grantAllRequested, runPeer } from './peer_server.mjs';

const SANDBOX_USERS = 'peer:sandbox-users';
const SANDBOX_CODE = Buffer.from('000000');
const MAX_BODY = 4096;

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);

const page = (title, body) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`;

const emailForm = (uid, { email = '', problem = '' } = {}) => page('Sign in', `
${problem ? `<p role="alert">${escapeHtml(problem)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/email">
<label>Email <input type="email" name="email" value="${escapeHtml(email)}" autocomplete="email" required autofocus></label>
<button type="submit">Continue</button>
</form>`);

const codeForm = (uid, email, problem = '') => page('Enter your code', `
<p>We sent a code to the phone of ${escapeHtml(email)}.</p>
${problem ? `<p role="alert">${escapeHtml(problem)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/code">
<label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus></label>
<button type="submit">Sign in</button>
</form>`);

function send(res, status, html) {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(html),
    'Cache-Control': 'no-store',
  });
  res.end(html);
}

function redirect(res, location) {
  res.writeHead(303, { Location: location, 'Content-Length': '0' });
  res.end();
}

// A request the forms cannot take; its message is shown on the error page.
class BadRequest extends Error {
  constructor(message, status = 400) {
    super(message);
    this.status = status;
  }
}

// The urlencoded body of a form POST, at most MAX_BODY bytes.
function readForm(req) {
  if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
    return Promise.reject(new BadRequest('A form post was expected.', 415));
  }
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        // Node discards the rest of the body once the answer is sent.
        req.removeAllListeners('data');
        reject(new BadRequest('The form is too large.', 413));
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

const secondsLeft = (details) => details.exp - Math.floor(Date.now() / 1000);

function makeInteraction(provider, redis) {
  async function emailPost(req, res, details, uid) {
    const form = await readForm(req);
    const email = (form.get('email') ?? '').trim().toLowerCase();
    if (!email || !(await redis.sismember(SANDBOX_USERS, email))) {
      send(res, 200, emailForm(uid, { email, problem: 'No account uses this email.' }));
      return;
    }
    // The pending verification lives in the interaction (its result, until the code is in).
    details.result = { verification: { email } };
    await details.save(secondsLeft(details));
    redirect(res, `/interaction/${uid}/code`);
  }

  async function codePost(req, res, details, uid) {
    const form = await readForm(req);
    const pending = details.result?.verification;
    if (!pending) {
      redirect(res, `/interaction/${uid}`);
      return;
    }
    const code = Buffer.from(form.get('code') ?? '');
    if (code.length !== SANDBOX_CODE.length || !timingSafeEqual(code, SANDBOX_CODE)) {
      send(res, 200, codeForm(uid, pending.email, 'That code is not right.'));
      return;
    }
    const grantId = await grantAllRequested(provider, details);
    await provider.interactionFinished(
      req, res, { login: { accountId: ACCOUNT_ID }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  }

  return async function interaction(req, res) {
    const [, , uid, step = '', ...rest] = new URL(req.url, 'http://peer').pathname.split('/');
    try {
      if (rest.length || !['', 'email', 'code'].includes(step)) {
        send(res, 404, page('Not found', '<p>There is no such page.</p>'));
        return;
      }
      const details = await provider.interactionDetails(req, res);
      if (details.uid !== uid) throw new BadRequest('This sign-in is not the one in progress.');
      const post = req.method === 'POST';
      if (!post && req.method !== 'GET') {
        send(res, 405, page('Not allowed', '<p>Use the form.</p>'));
      } else if (step === '' && !post) {
        send(res, 200, emailForm(uid));
      } else if (step === 'email' && post) {
        await emailPost(req, res, details, uid);
      } else if (step === 'code' && !post) {
        const pending = details.result?.verification;
        if (pending) send(res, 200, codeForm(uid, pending.email));
        else redirect(res, `/interaction/${uid}`);
      } else if (step === 'code' && post) {
        await codePost(req, res, details, uid);
      } else {
        send(res, 405, page('Not allowed', '<p>Use the form.</p>'));
      }
    } catch (error) {
      if (res.headersSent) return;
      if (error instanceof BadRequest) {
        send(res, error.status, page('Cannot continue', `<p>${escapeHtml(error.message)}</p>`));
      } else if (error.statusCode === 400) {
        // oidc-provider's SessionNotFound and friends: no interaction, or an expired one.
        send(res, 400, page('Sign-in expired', '<p>Start signing in again from the app.</p>'));
      } else {
        console.error(`interaction failed: ${error.name}`);
        send(res, 500, page('Something went wrong', '<p>Start signing in again.</p>'));
      }
    }
  };
}

runPeer({
  name: 'forms peer',
  makeInteraction,
  // The sandbox's users, as a set (oidc-link's sandbox has the same one user).
  prepare: (redis) => redis.sadd(SANDBOX_USERS, process.env.PEER_EMAIL.toLowerCase()),
});

// node-oidc-provider configured like the oidc-link the benchmark runs: Redis storage, RS256,
// PKCE required, one confidential client (client_secret_basic), refresh tokens that rotate,
// an automatic login interaction (no form, no consent page) and Node's cluster with one
// worker per core. Settings come from the environment (see bench/peer.py); loopback only.
//
//   PEER_PORT, PEER_ISSUER, PEER_REDIS_URL, PEER_WORKERS,
//   PEER_CLIENT_ID, PEER_CLIENT_SECRET, PEER_REDIRECT_URI, PEER_EMAIL

import cluster from 'node:cluster';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';

import Redis from 'ioredis';
import Provider from 'oidc-provider';

import { redisAdapterFactory } from './redis_adapter.mjs';

const env = process.env;
const PORT = Number(env.PEER_PORT);
const WORKERS = Number(env.PEER_WORKERS || 2);
const HOUR = 3600;
// The same lifetimes as oidc-link's defaults (docs/configuration.md).
const TTL = {
  AccessToken: HOUR,
  AuthorizationCode: 60,
  IdToken: HOUR,
  RefreshToken: 30 * 24 * HOUR,
  Interaction: 600,
  Session: 24 * HOUR,
  Grant: 30 * 24 * HOUR,
};

if (cluster.isPrimary) {
  // One signing key and one cookie key for every worker, made once per run.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' };
  const shared = {
    PEER_JWK: JSON.stringify(jwk),
    PEER_COOKIE_KEY: randomBytes(32).toString('base64url'),
  };
  let ready = 0;
  for (let i = 0; i < WORKERS; i += 1) {
    cluster.fork(shared).on('message', (message) => {
      if (message === 'listening') {
        ready += 1;
        if (ready === WORKERS) {
          console.log(`peer listening on ${env.PEER_ISSUER} with ${WORKERS} workers`);
        }
      }
    });
  }
  const stop = () => {
    for (const worker of Object.values(cluster.workers)) worker.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const redis = new Redis(env.PEER_REDIS_URL, { enableAutoPipelining: false });
  const email = env.PEER_EMAIL;

  const provider = new Provider(env.PEER_ISSUER, {
    adapter: redisAdapterFactory(redis, TTL.Grant),
    clients: [
      {
        client_id: env.PEER_CLIENT_ID,
        client_secret: env.PEER_CLIENT_SECRET,
        redirect_uris: [env.PEER_REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'RS256',
      },
    ],
    jwks: { keys: [JSON.parse(env.PEER_JWK)] },
    cookies: { keys: [env.PEER_COOKIE_KEY] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    ttl: TTL,
    // Like oidc-link's client setting refresh_tokens = true: a refresh token with every code,
    // rotated on every use (oidc-link rotates always).
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, email, email_verified: true, name: 'Jenny Rosen' };
        },
      };
    },
  });

  // The automatic login: whoever reaches the interaction is signed in, and the grant covers
  // what was asked for, so no consent prompt follows (oidc-link's first-party clients have
  // no consent page either).
  async function interaction(req, res) {
    try {
      const details = await provider.interactionDetails(req, res);
      const grant = new provider.Grant({ accountId: 'jenny', clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      details.result = { login: { accountId: 'jenny' }, consent: { grantId } };
      await details.save(details.exp - Math.floor(Date.now() / 1000));
      res.writeHead(303, { Location: details.returnTo, 'Content-Length': '0' });
      res.end();
    } catch (error) {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end(`interaction failed: ${error.message}`);
    }
  }

  const handle = provider.callback();
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url.startsWith('/interaction/')) {
      interaction(req, res);
    } else {
      handle(req, res);
    }
  });
  // Longer than any client pool's idle time, like oidc-link's server.
  server.keepAliveTimeout = 75_000;
  server.listen(PORT, '127.0.0.1', () => process.send('listening'));
}

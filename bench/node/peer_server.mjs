// What both bench peers share: node-oidc-provider configured like the oidc-link the benchmark
// runs (Redis storage, RS256, PKCE required, one confidential client with
// client_secret_basic, refresh tokens that rotate, oidc-link's default lifetimes) under
// Node's cluster, one worker per core, loopback only. Each peer brings its own interaction.
//
// Settings come from the environment (bench/processes.py sets them):
//   PEER_PORT, PEER_ISSUER, PEER_REDIS_URL, PEER_WORKERS,
//   PEER_CLIENT_ID, PEER_CLIENT_SECRET, PEER_REDIRECT_URI, PEER_EMAIL

import cluster from 'node:cluster';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';

import Redis from 'ioredis';
import Provider from 'oidc-provider';

import { redisAdapterFactory } from './redis_adapter.mjs';

const env = process.env;
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

// The one account both peers sign in, with the claims oidc-link's sandbox user has.
export const ACCOUNT_ID = 'jenny';

function newProvider(redis) {
  return new Provider(env.PEER_ISSUER, {
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
          return { sub, email: env.PEER_EMAIL, email_verified: true, name: 'Jenny Rosen' };
        },
      };
    },
  });
}

// A grant covering every scope the request asked for: no consent prompt follows (oidc-link's
// first-party clients have no consent page either). Returns the saved grant's id.
export async function grantAllRequested(provider, details) {
  const grant = new provider.Grant({ accountId: ACCOUNT_ID, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  return grant.save();
}

// Runs the peer: the primary makes one signing key and one cookie key for every worker and
// forks; each worker answers /interaction/... with `makeInteraction(provider, redis)` (a
// request handler) and everything else with the provider. `prepare(redis)`, if given, runs
// in each worker before it listens.
export function runPeer({ name, makeInteraction, prepare }) {
  const workers = Number(env.PEER_WORKERS || 2);
  if (cluster.isPrimary) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' };
    const shared = {
      PEER_JWK: JSON.stringify(jwk),
      PEER_COOKIE_KEY: randomBytes(32).toString('base64url'),
    };
    let ready = 0;
    for (let i = 0; i < workers; i += 1) {
      cluster.fork(shared).on('message', (message) => {
        if (message === 'listening') {
          ready += 1;
          if (ready === workers) {
            console.log(`${name} listening on ${env.PEER_ISSUER} with ${workers} workers`);
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
    return;
  }
  const redis = new Redis(env.PEER_REDIS_URL, { enableAutoPipelining: false });
  const provider = newProvider(redis);
  const interaction = makeInteraction(provider, redis);
  const handle = provider.callback();
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(req, res);
    } else {
      handle(req, res);
    }
  });
  // Longer than any client pool's idle time, like oidc-link's server.
  server.keepAliveTimeout = 75_000;
  Promise.resolve(prepare?.(redis)).then(() => {
    server.listen(Number(env.PEER_PORT), '127.0.0.1', () => process.send('listening'));
  });
}

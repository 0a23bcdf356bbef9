// The Node side of bench.server_floor: the same two fixed documents as bench/floor_app.py,
// from Node's own http module, one process per worker (cluster), nothing else.
import cluster from 'node:cluster';
import http from 'node:http';

const issuer = process.env.FLOOR_ISSUER;
const port = Number(new URL(issuer).port);
const discovery = JSON.stringify({
  issuer, jwks_uri: `${issuer}/jwks.json`, token_endpoint: `${issuer}/token`,
});
const jwks = JSON.stringify({
  keys: [{ kty: 'RSA', kid: 'k'.repeat(43), n: 'n'.repeat(342), e: 'AQAB', use: 'sig', alg: 'RS256' }],
});

if (cluster.isPrimary) {
  for (let i = 0; i < Number(process.env.FLOOR_WORKERS ?? 2); i += 1) cluster.fork();
} else {
  http.createServer((request, response) => {
    const body = request.url === '/.well-known/openid-configuration' ? discovery : jwks;
    response.writeHead(200, {
      'content-type': 'application/json', 'cache-control': 'public, max-age=300',
    });
    response.end(body);
  }).listen(port, '127.0.0.1');
}

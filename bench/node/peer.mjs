// The automatic peer: node-oidc-provider (configured in peer_server.mjs) with a login
// interaction that has no form and no consent page: GET /interaction/:uid signs the one
// bench user in and grants what was asked for. 4 HTTP exchanges per sign-in.

import { ACCOUNT_ID, grantAllRequested, runPeer } from './peer_server.mjs';

function makeInteraction(provider) {
  // Whoever reaches the interaction is signed in; the result is saved and the browser sent
  // back to the provider in one step (interactionFinished would load the interaction again).
  return async function interaction(req, res) {
    if (req.method !== 'GET') {
      res.writeHead(405, { Allow: 'GET', 'Content-Type': 'text/plain' });
      res.end('method not allowed');
      return;
    }
    try {
      const details = await provider.interactionDetails(req, res);
      const grantId = await grantAllRequested(provider, details);
      details.result = { login: { accountId: ACCOUNT_ID }, consent: { grantId } };
      await details.save(details.exp - Math.floor(Date.now() / 1000));
      res.writeHead(303, { Location: details.returnTo, 'Content-Length': '0' });
      res.end();
    } catch (error) {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end(`interaction failed: ${error.message}`);
    }
  };
}

runPeer({ name: 'automatic peer', makeInteraction });

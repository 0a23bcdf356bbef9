// A relying party built on openid-client v6, run by tests/interop/test_openid_client.py one
// step at a time: it reads {"step": ..., ...} as JSON on stdin and writes JSON on stdout.
// Python drives the person in between (the hosted pages) and checks what this prints.
//
//   authorize    discovery, then an authorization URL with PKCE (S256), state and nonce
//   redeem       the code grant (ID token: JWKS signature, iss, aud, nonce, PKCE), userinfo,
//                refresh, revocation, and proof that the revoked refresh token is refused
//   end_session  the RP-Initiated Logout URL, with id_token_hint and post_logout_redirect_uri
//
// Every step starts with discovery, as a fresh process of a real RP would.
import * as client from "openid-client";

async function readInput() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

async function discover(input) {
  return client.discovery(
    new URL(input.issuer),
    input.client_id,
    { redirect_uris: [input.redirect_uri] },
    client.ClientSecretBasic(input.client_secret),
    {
      // The provider under test is http on loopback (allowed by its configuration only there).
      // Non-repudiation checks make the library verify the ID token's signature against the
      // JWKS too, which it otherwise skips for token endpoint responses over TLS.
      execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
    },
  );
}

async function authorize(input) {
  const config = await discover(input);
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: input.redirect_uri,
    scope: input.scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: "S256",
    state,
    nonce,
  });
  const metadata = config.serverMetadata();
  return {
    authorization_url: url.href,
    code_verifier: codeVerifier,
    state,
    nonce,
    discovered: {
      issuer: metadata.issuer,
      authorization_endpoint: metadata.authorization_endpoint,
      token_endpoint: metadata.token_endpoint,
      jwks_uri: metadata.jwks_uri,
      end_session_endpoint: metadata.end_session_endpoint ?? null,
    },
  };
}

async function redeem(input) {
  const config = await discover(input);
  const tokens = await client.authorizationCodeGrant(config, new URL(input.callback_url), {
    pkceCodeVerifier: input.code_verifier,
    expectedState: input.state,
    expectedNonce: input.nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  // The library checks that userinfo's sub is the ID token's (OIDC Core §5.3.2).
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  await client.tokenRevocation(config, refreshed.refresh_token, {
    token_type_hint: "refresh_token",
  });
  const revokedRefusal = await refusal(() =>
    client.refreshTokenGrant(config, refreshed.refresh_token),
  );
  return {
    token_type: tokens.token_type,
    scope: tokens.scope ?? null,
    expires_in: tokens.expiresIn() ?? null,
    id_token: tokens.id_token,
    id_token_claims: claims,
    userinfo,
    has_refresh_token: typeof tokens.refresh_token === "string",
    refreshed: {
      access_token_changed: refreshed.access_token !== tokens.access_token,
      refresh_token_rotated:
        typeof refreshed.refresh_token === "string" &&
        refreshed.refresh_token !== tokens.refresh_token,
      id_token_claims: refreshed.claims() ?? null,
    },
    revoked_refresh_token_refused: revokedRefusal,
  };
}

async function endSession(input) {
  const config = await discover(input);
  const url = client.buildEndSessionUrl(config, {
    id_token_hint: input.id_token,
    post_logout_redirect_uri: input.post_logout_redirect_uri,
    state: input.logout_state,
  });
  return { end_session_url: url.href };
}

// What the token endpoint said when the library refused a grant; null if it was accepted.
async function refusal(attempt) {
  try {
    await attempt();
    return null;
  } catch (error) {
    return { name: error.name, error: error.error ?? null, status: error.status ?? null };
  }
}

const steps = { authorize, redeem, end_session: endSession };

try {
  const input = await readInput();
  const step = steps[input.step];
  if (step === undefined) throw new Error(`unknown step ${JSON.stringify(input.step)}`);
  process.stdout.write(JSON.stringify(await step(input)));
} catch (error) {
  process.stdout.write(
    JSON.stringify({
      failure: {
        name: error.name,
        message: error.message,
        code: error.code ?? null,
        error: error.error ?? null,
        error_description: error.error_description ?? null,
        cause: error.cause ? String(error.cause.message ?? error.cause) : null,
      },
    }),
  );
  process.exitCode = 1;
}

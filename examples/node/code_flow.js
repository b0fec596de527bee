// Latchkey quickstart, Node.js: the authorization code flow with PKCE, with openid-client.
//
// A person signs in on Latchkey and allows your application; your application gets tokens
// that act for that person. This script plays a small web application on your machine:
//
// 1. it builds the authorization URL (PKCE S256, state, nonce) from the server's discovery
//    document and prints it: open it in a browser, sign in, press Allow;
// 2. Latchkey sends the browser back to REDIRECT_URI, where a tiny local web server receives
//    the code;
// 3. the script exchanges the code (with the PKCE verifier and the client secret), checks the
//    id_token, calls /oauth/userinfo and /v1/user/profile, and refreshes the tokens once.
//
//   npm ci
//   LATCHKEY_ISSUER=http://127.0.0.1:8080 CLIENT_ID=... CLIENT_SECRET=... \
//     REDIRECT_URI=http://127.0.0.1:8000/callback node code_flow.js
import http from 'node:http'
import * as client from 'openid-client'

// Where the server is, and who we are (from `latchkey client create ... --json`). REDIRECT_URI
// must be registered on the application exactly as written here (`--redirect-uri`).
const ISSUER = new URL(process.env.LATCHKEY_ISSUER ?? 'http://127.0.0.1:8080')
const CLIENT_ID = required('CLIENT_ID')
const CLIENT_SECRET = required('CLIENT_SECRET')
const REDIRECT_URI = process.env.REDIRECT_URI ?? 'http://127.0.0.1:8000/callback'
// openid + profile: an id_token and the person's name; get_user_profile: /v1/user/profile.
const SCOPE = 'openid profile get_user_profile'

// 1. Discovery (/.well-known/openid-configuration): where the endpoints are; openid-client
//    checks that the document names ISSUER as its issuer. The client ID and secret go in an
//    HTTP Basic header (client_secret_basic).
const config = await client.discovery(
  ISSUER,
  CLIENT_ID,
  undefined,
  client.ClientSecretBasic(CLIENT_SECRET),
  // openid-client talks to https:// servers only. A server on your own machine
  // (http://localhost or http://127.0.0.1) is the one exception we allow, for trying things out.
  isLocalHttp(ISSUER) ? { execute: [client.allowInsecureRequests] } : undefined,
)

// 2. The authorization URL. A real web app keeps code_verifier, state and nonce in the user's
//    session until the browser comes back; here they simply stay in these variables.
const codeVerifier = client.randomPKCECodeVerifier() // only its SHA-256 goes in the URL
const state = client.randomState()
const nonce = client.randomNonce() // comes back inside the id_token
const url = client.buildAuthorizationUrl(config, {
  redirect_uri: REDIRECT_URI,
  scope: SCOPE,
  code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
  code_challenge_method: 'S256',
  state,
  nonce,
})
// 3. A one-shot web server on REDIRECT_URI's host and port that waits for the browser. The
//    full URL the browser was sent to is built on REDIRECT_URI (not on the Host header).
const callback = await new Promise((resolve) => {
  const where = new URL(REDIRECT_URI)
  const server = http.createServer((req, res) => {
    const received = new URL(req.url, REDIRECT_URI)
    if (received.pathname !== where.pathname) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' })
    res.end('Done: you can close this tab and go back to the terminal.\n')
    server.close()
    resolve(received)
  })
  server.listen(Number(where.port || 80), where.hostname.replace(/^\[|\]$/g, ''), () => {
    // Listening already, so the browser finds us however fast it comes back.
    console.log('Open this URL in your browser, sign in and allow the application:\n')
    console.log(`    ${url.href}\n`)
    console.log(`Waiting for the browser at ${REDIRECT_URI} ...`)
  })
})

// 4. Exchange the code. openid-client checks the response first: `state` is ours, `iss` is
//    ISSUER (RFC 9207), no `error` (e.g. access_denied when the person pressed Deny). Then it
//    posts the code and the PKCE verifier, and checks the id_token: signature (the server's
//    JWKS), issuer, audience, expiry and our nonce.
let tokens = await client.authorizationCodeGrant(config, callback, {
  pkceCodeVerifier: codeVerifier,
  expectedState: state,
  expectedNonce: nonce,
  idTokenExpected: true,
})
console.log(
  `tokens: ${tokens.token_type}, expires in ${tokens.expires_in} s, scope '${tokens.scope}', ` +
    `refresh token: ${tokens.refresh_token ? 'yes' : 'no'}`,
)
const { sub } = tokens.claims()
console.log(`id_token: valid, sub '${sub}'`)

// 5. Call the APIs with the access token. fetchUserInfo also checks that the answer is about
//    the person of the id_token.
const userinfo = await client.fetchUserInfo(config, tokens.access_token, sub)
console.log(`userinfo: ${JSON.stringify(userinfo)}`)
console.log(`profile: ${JSON.stringify(await profile(tokens.access_token))}`)

// 6. Refresh. Latchkey rotates refresh tokens: each refresh answers a new one and the old one
//    stops working, so always keep the newest.
const oldRefreshToken = tokens.refresh_token
tokens = await client.refreshTokenGrant(config, oldRefreshToken)
if (!tokens.refresh_token || tokens.refresh_token === oldRefreshToken) {
  throw new Error('the refresh did not rotate the refresh token')
}
console.log('refreshed: new access token and new refresh token')
console.log(`profile after refresh: ${JSON.stringify(await profile(tokens.access_token))}`)

async function profile(accessToken) {
  const response = await client.fetchProtectedResource(
    config,
    accessToken,
    new URL(`${ISSUER.href.replace(/\/$/, '')}/v1/user/profile`),
    'GET',
  )
  if (!response.ok) throw new Error(`/v1/user/profile answered ${response.status}`)
  return response.json()
}

function required(name) {
  const value = process.env[name]
  if (!value) {
    console.error(`set ${name} (see README.md)`)
    process.exit(2)
  }
  return value
}

function isLocalHttp(url) {
  return url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname)
}

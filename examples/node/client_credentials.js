// Latchkey quickstart, Node.js: the client_credentials grant with openid-client.
//
// Your server-side application gets an access token with its own client ID and secret (no
// person involved) and calls an API with it. For client_credentials, Latchkey's token acts for
// the application's owner (the merchant account that registered it), so /v1/user/profile
// answers with that account.
//
//   npm ci
//   LATCHKEY_ISSUER=http://127.0.0.1:8080 CLIENT_ID=... CLIENT_SECRET=... node client_credentials.js
import * as client from 'openid-client'

// Where the server is, and who we are (from `latchkey client create ... --json`).
const ISSUER = new URL(process.env.LATCHKEY_ISSUER ?? 'http://127.0.0.1:8080')
const CLIENT_ID = required('CLIENT_ID')
const CLIENT_SECRET = required('CLIENT_SECRET')

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

// 2. The token request. Ask only for the scopes you need; without `scope` you get every scope
//    the application is allowed.
const token = await client.clientCredentialsGrant(config, { scope: 'get_user_profile' })
console.log(`access token: ${token.token_type}, expires in ${token.expires_in} s, scope '${token.scope}'`)

// 3. Call the API with the token (openid-client sends `Authorization: Bearer ...`).
const response = await client.fetchProtectedResource(
  config,
  token.access_token,
  new URL(`${ISSUER.href.replace(/\/$/, '')}/v1/user/profile`),
  'GET',
)
if (!response.ok) throw new Error(`/v1/user/profile answered ${response.status}`)
console.log(`profile (the application's owner): ${JSON.stringify(await response.json())}`)

// 4. Optional: what a resource server learns by introspecting the token (RFC 7662).
const info = await client.tokenIntrospection(config, token.access_token)
const { active, client_id, scope, sub, username } = info
console.log(`introspection: ${JSON.stringify({ active, client_id, scope, sub, username })}`)

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

//! The FAPI 2.0 Security Profile (OpenID Foundation, FAPI 2.0 Security Profile §5), as one
//! switch per client (`clients.fapi2`). What it turns on, and where each rule lives:
//!
//! - pushed authorization requests only (§5.3.2.2-2): [`Client::requires_par`], checked by
//!   `authorize::validate`;
//! - PKCE with S256 for confidential clients too (§5.3.2.2-4): `authorize::validate` and the
//!   `authorization_code` grant;
//! - `private_key_jwt` as the only client authentication (§5.3.2.1-1, no shared secret):
//!   `clients::check_security` refuses the switch for a secret-based client, and a key-based
//!   client has no secret to present;
//! - sender-constrained access tokens by DPoP (§5.3.2.1-3): [`Client::requires_dpop`], checked
//!   by `token::exchange`;
//! - authorization codes that live at most [`CODE_TTL`] (§5.3.2.1-5): [`code_ttl`];
//! - `iss` in the authorization response (RFC 9207, §5.3.2.2-7): sent to every client already;
//! - no refresh token rotation (§5.3.2.1-8 asks for none "except in extraordinary
//!   circumstances"): a FAPI 2.0 client's refresh token is bound to its key by
//!   `private_key_jwt`, so a stolen copy is useless without the key, while rotating it strands
//!   a client that loses one response. Its refresh token stays the same across refreshes
//!   ([`rotates_refresh_tokens`]) until it expires or is revoked;
//! - no password grant: `clients::check_security`, and the token endpoint refuses it.
//!
//! What it does not do: request objects (JAR, RFC 9101) and JARM are not part of the
//! FAPI 2.0 Security Profile's baseline, and `dpop_jkt` at the authorization endpoint
//! (RFC 9449 §10) is optional there.

use std::time::Duration;

use crate::db::models::Client;

/// The longest a FAPI 2.0 client's authorization code lives (§5.3.2.1-5: "shall issue
/// authorization codes with a maximum lifetime of 60 seconds").
pub const CODE_TTL: Duration = Duration::from_secs(60);

/// How long `client`'s authorization codes live: the server's lifetime, capped at
/// [`CODE_TTL`] for a FAPI 2.0 client.
pub fn code_ttl(client: &Client, server: Duration) -> Duration {
    if client.fapi2 {
        server.min(CODE_TTL)
    } else {
        server
    }
}

/// Whether a refresh with `client` retires the token it presents and issues a new one
/// (RFC 9700 §4.14.2): every client but a FAPI 2.0 one (see the module doc).
pub fn rotates_refresh_tokens(client: &Client) -> bool {
    !client.fapi2
}

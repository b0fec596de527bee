//! Client authentication at the token, introspection and revocation endpoints (RFC 6749
//! §2.3): `client_secret_basic`, `client_secret_post`, `private_key_jwt` for key-based clients
//! (RFC 7523 §2.2, checked by [`super::assertion`]), or `none` for public clients.
//!
//! An unknown client and a wrong secret look the same from outside: the same 401, the same body,
//! and the same work (one lookup in the client cache, which caches unknown ids as it caches
//! clients and loads either in one query; one keyed digest; a constant-time compare against
//! every active digest, or a dummy one).
//!
//! Clients come from [`ClientCache`] (see `db::client_cache` for how it stays current), so a
//! request whose client is cached runs no query here; secret expiry is checked against the
//! request's `now` at every use.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{NaiveDateTime, TimeDelta};
use std::sync::Arc;

use diesel::QueryResult;
use percent_encoding::percent_decode_str;
use subtle::ConstantTimeEq as _;

use super::assertion::ASSERTION_TYPE;
use super::context::OAuthContext;
use super::error::{ErrorCode, OAuthError};
use super::request::BodyCredentials;
use crate::db::models::{Client, ClientSecret, UsedJti};
use crate::db::{AnyConnection, CachedClient, CachedSecret, Writer};

/// How the client presented itself.
#[derive(Clone, PartialEq, Eq)]
pub enum Presented {
    /// `client_secret_basic` or `client_secret_post`.
    Secret { client_id: String, secret: String },
    /// A public client: `client_id` only (`token_endpoint_auth_method=none`).
    PublicClient { client_id: String },
    /// `private_key_jwt`: a JWT signed with one of the client's keys, for the client its
    /// `sub` names (not yet verified).
    Assertion {
        client_id: String,
        assertion: String,
    },
}

impl Presented {
    /// The client the credentials are for.
    pub fn client_id(&self) -> &str {
        match self {
            Self::Secret { client_id, .. }
            | Self::PublicClient { client_id }
            | Self::Assertion { client_id, .. } => client_id,
        }
    }
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret { client_id, .. } => write!(f, "Secret({client_id}, ***)"),
            Self::PublicClient { client_id } => write!(f, "PublicClient({client_id})"),
            Self::Assertion { client_id, .. } => write!(f, "Assertion({client_id}, ***)"),
        }
    }
}

/// Longest client_id or secret read; anything longer cannot be ours.
const MAX_CREDENTIAL_LEN: usize = 256;

/// Combines the `Authorization` header and the body's credentials. Using both methods at once
/// is refused (RFC 6749 §2.3: "MUST NOT use more than one authentication method").
pub fn presented(
    authorization: Option<&[u8]>,
    body: &BodyCredentials,
) -> Result<Presented, OAuthError> {
    if let Some(assertion) = &body.client_assertion {
        if authorization.is_some() || body.client_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "Send either a client assertion or a client secret, not both.",
            ));
        }
        if body.client_assertion_type.as_deref() != Some(ASSERTION_TYPE) {
            return Err(OAuthError::invalid_request(format!(
                "A client_assertion needs client_assertion_type={ASSERTION_TYPE}."
            )));
        }
        let client_id = super::assertion::claimed_client_id(assertion)?;
        if body.client_id.as_ref().is_some_and(|id| *id != client_id) {
            return Err(OAuthError::invalid_client());
        }
        return Ok(Presented::Assertion {
            client_id,
            assertion: assertion.clone(),
        });
    }
    if body.client_assertion_type.is_some() {
        return Err(OAuthError::invalid_request(
            "A client_assertion_type was sent without a client_assertion.",
        ));
    }
    if let Some(header) = authorization {
        let (client_id, secret) = parse_basic(header)?;
        if body.client_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "Send the client credentials either in the Authorization header or in the body, not both.",
            ));
        }
        if body.client_id.as_ref().is_some_and(|id| *id != client_id) {
            return Err(OAuthError::invalid_request(
                "The client_id in the body differs from the one in the Authorization header.",
            ));
        }
        return Ok(Presented::Secret { client_id, secret });
    }
    match (&body.client_id, &body.client_secret) {
        (Some(id), Some(secret)) => Ok(Presented::Secret {
            client_id: id.clone(),
            secret: secret.clone(),
        }),
        (Some(id), None) => Ok(Presented::PublicClient {
            client_id: id.clone(),
        }),
        (None, _) => Err(OAuthError::invalid_client()),
    }
}

/// The client id a request names (the `Authorization` header's, else the body's), unproven:
/// for the token request's trace span and nothing else.
pub fn named_client_id(authorization: Option<&[u8]>, body: &BodyCredentials) -> Option<String> {
    match authorization {
        Some(header) => parse_basic(header).ok().map(|(id, _)| id),
        None => body.client_id.clone(),
    }
    .filter(|id| id.len() <= 128)
}

/// The client authentication method a request tries, for the failure metric's label.
pub fn method_tried(authorization: Option<&[u8]>, body: &BodyCredentials) -> &'static str {
    if authorization.is_some() {
        "client_secret_basic"
    } else if body.client_assertion.is_some() {
        "private_key_jwt"
    } else if body.client_secret.is_some() {
        "client_secret_post"
    } else {
        "none"
    }
}

/// `Basic base64(urlencode(client_id) ":" urlencode(client_secret))`, RFC 6749 §2.3.1.
fn parse_basic(header: &[u8]) -> Result<(String, String), OAuthError> {
    let text = std::str::from_utf8(header).map_err(|_| OAuthError::invalid_client())?;
    let (scheme, encoded) = text
        .trim()
        .split_once(' ')
        .ok_or_else(OAuthError::invalid_client)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client());
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| OAuthError::invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(OAuthError::invalid_client)?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    if id.is_empty() || id.len() > MAX_CREDENTIAL_LEN || secret.len() > MAX_CREDENTIAL_LEN {
        return Err(OAuthError::invalid_client());
    }
    Ok((id, secret))
}

/// The `application/x-www-form-urlencoded` decoding §2.3.1 asks for: `+` is a space.
fn form_decode(text: &str) -> Result<String, OAuthError> {
    let plus_as_space = text.replace('+', " ");
    percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| OAuthError::invalid_client())
}

/// A client that proved who it is, and the secret it used (for `last_used_at`).
#[derive(Debug)]
pub struct Authenticated {
    entry: Arc<CachedClient>,
    /// Index of the secret that matched in the entry's secrets; none for a public client.
    secret: Option<usize>,
    /// A client assertion's `jti`, when [`check`] left it to the caller to spend.
    unspent: Option<SingleUse>,
}

/// What a single-use identifier was, so that a replay gets its own refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SingleUseKind {
    /// A client assertion's `jti` (RFC 7523 §3): `invalid_client`.
    Assertion,
    /// A DPoP proof's `jti` (RFC 9449 §11.1): `invalid_dpop_proof`.
    DpopProof,
}

impl SingleUseKind {
    /// The refusal when the identifier was used before.
    pub fn replayed(self) -> OAuthError {
        match self {
            Self::Assertion => OAuthError::new(
                ErrorCode::InvalidClient,
                "The client assertion was refused: its `jti` was used before.",
            ),
            Self::DpopProof => super::dpop::DpopError::Invalid("its jti was used before").into(),
        }
    }
}

/// An identifier that may be used once (`used_jtis`, shared by every instance): its key and
/// until when it must be remembered.
#[derive(Debug, Clone)]
pub struct SingleUse {
    pub kind: SingleUseKind,
    pub key: String,
    pub until: NaiveDateTime,
}

impl SingleUse {
    /// A DPoP proof's `jti`.
    pub fn dpop(proof: &super::dpop::Proof) -> Self {
        Self {
            kind: SingleUseKind::DpopProof,
            key: proof.replay_key(),
            until: chrono::DateTime::from_timestamp(proof.expires_at, 0)
                .unwrap_or_default()
                .naive_utc(),
        }
    }

    /// Records it as used: `false` if it was used before. One statement.
    pub fn record(&self, conn: &mut AnyConnection) -> diesel::QueryResult<bool> {
        UsedJti::record(conn, &self.key, self.until)
    }
}

/// Spends each identifier now (in the writer's turn on SQLite), or refuses the first that was
/// used before.
pub fn spend_now(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    once: &[SingleUse],
) -> Result<(), OAuthError> {
    for id in once {
        if !ctx.writer.hold(|| id.record(conn))? {
            return Err(id.kind.replayed());
        }
    }
    Ok(())
}

impl Authenticated {
    /// The assertion's `jti` that [`check`] left unspent, for the caller to spend with its
    /// other writes.
    pub fn take_unspent(&mut self) -> Option<SingleUse> {
        self.unspent.take()
    }

    pub fn client(&self) -> &Client {
        &self.entry.client
    }

    pub fn secret(&self) -> Option<&CachedSecret> {
        self.secret.and_then(|i| self.entry.secrets().get(i))
    }
}

/// `last_used_at` is written at most this often per secret, to keep writes off the hot path.
pub const LAST_USED_RESOLUTION: TimeDelta = TimeDelta::minutes(5);

/// The endpoints that authenticate clients: a client assertion's `aud` may name the one it is
/// sent to (or the token endpoint, or the issuer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Introspect,
    Revoke,
    /// Pushed authorization requests (RFC 9126).
    Par,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Self::Token => "/oauth/token",
            Self::Introspect => "/oauth/introspect",
            Self::Revoke => "/oauth/revoke",
            Self::Par => "/oauth/par",
        }
    }
}

/// Checks the presented credentials against the client cache (a query only when the client is
/// not cached). A client assertion's `jti` is recorded as used (one write, in the writer's
/// turn on SQLite), so the same assertion is refused next time, on any instance.
pub fn authenticate(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    presented: &Presented,
    endpoint: Endpoint,
    now: NaiveDateTime,
) -> Result<Authenticated, OAuthError> {
    let mut auth = check(conn, ctx, presented, endpoint, now)?;
    if let Some(jti) = auth.take_unspent() {
        spend_now(conn, ctx, &[jti])?;
    }
    Ok(auth)
}

/// [`authenticate`], but a client assertion's `jti` is left unspent
/// ([`Authenticated::take_unspent`]): the caller must spend it before it answers anything the
/// credentials earned, in the same commit as its own rows (the token endpoint's group commit).
pub fn check(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    presented: &Presented,
    endpoint: Endpoint,
    now: NaiveDateTime,
) -> Result<Authenticated, OAuthError> {
    let entry = lookup(conn, ctx, presented, now)?;
    verify(ctx, presented, entry, endpoint, now)
}

/// The client the credentials name, if it exists (from the client cache: a query only when it
/// is not cached). The first half of [`check`].
pub fn lookup(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    presented: &Presented,
    now: NaiveDateTime,
) -> Result<Option<Arc<CachedClient>>, OAuthError> {
    let client_id = presented.client_id();
    if client_id.len() > MAX_CREDENTIAL_LEN {
        return Err(OAuthError::invalid_client());
    }
    Ok(ctx.clients.client(conn, client_id, now)?)
}

/// The second half of [`check`]: the credentials against the client [`lookup`] found. Every
/// refusal answers the caller the same `invalid_client`; its [`OAuthError::reason`] tells the
/// client's owner which check failed.
pub fn verify(
    ctx: &OAuthContext,
    presented: &Presented,
    entry: Option<Arc<CachedClient>>,
    endpoint: Endpoint,
    now: NaiveDateTime,
) -> Result<Authenticated, OAuthError> {
    let client_id = presented.client_id();
    let mut unspent = None;
    let (entry, secret) = match presented {
        Presented::Secret { secret, .. } => {
            let digest = ctx.server_key.client_secret_digest(secret);
            // Compare against every digest active at `now` without stopping early; with none
            // (unknown or public client, or every secret expired), against a dummy, so the work
            // is the same.
            let mut matched: Option<usize> = None;
            let mut any = false;
            if let Some(entry) = &entry {
                for (i, stored) in entry.secrets().iter().enumerate() {
                    if !stored.is_active(now) {
                        continue;
                    }
                    any = true;
                    if bool::from(digest.as_bytes().ct_eq(stored.digest().as_bytes())) {
                        matched = Some(i);
                    }
                }
            }
            if !any {
                let _ = digest.as_bytes().ct_eq(DUMMY_DIGEST.as_bytes());
            }
            match (entry, matched) {
                (Some(entry), Some(i))
                    if entry.client.is_confidential && entry.keys().is_none() =>
                {
                    (entry, Some(i))
                }
                (Some(entry), _) => {
                    let reason = if !entry.client.is_confidential {
                        "a client secret was sent for a public client, which has none"
                    } else if entry.keys().is_some() {
                        "a client secret was sent, but this client signs in with private_key_jwt"
                    } else if !any {
                        "every secret of this client has expired"
                    } else {
                        "the client secret does not match any active secret"
                    };
                    return Err(OAuthError::invalid_client().because(reason));
                }
                (None, _) => return Err(OAuthError::invalid_client()),
            }
        }
        Presented::Assertion { assertion, .. } => {
            let Some(entry) = entry else {
                return Err(OAuthError::invalid_client());
            };
            if !entry.client.is_confidential {
                return Err(OAuthError::invalid_client()
                    .because("a client assertion was sent for a public client"));
            }
            let Some(keys) = entry.keys() else {
                return Err(OAuthError::invalid_client().because(
                    "a client assertion was sent, but this client has no public keys registered",
                ));
            };
            let issuer = ctx.issuer.as_str();
            let audiences = [
                issuer.to_owned(),
                format!("{issuer}{}", Endpoint::Token.path()),
                format!("{issuer}/v1/token"),
                format!("{issuer}{}", endpoint.path()),
            ];
            let audiences: Vec<&str> = audiences.iter().map(String::as_str).collect();
            let verified = super::assertion::verify(assertion, client_id, keys, &audiences, now)?;
            unspent = Some(SingleUse {
                kind: SingleUseKind::Assertion,
                key: verified.replay_key(client_id),
                until: verified.expires_at,
            });
            (entry, None)
        }
        Presented::PublicClient { .. } => match entry {
            Some(entry) if !entry.client.is_confidential => (entry, None),
            Some(_) => {
                return Err(OAuthError::invalid_client()
                    .because("no client credentials were sent for a confidential client"));
            }
            None => return Err(OAuthError::invalid_client()),
        },
    };
    // Only an authenticated caller learns that the client is disabled.
    if !entry.client.is_enabled {
        return Err(OAuthError::new(
            ErrorCode::InactiveClient,
            "This client is disabled. Its owner can enable it again in the developer portal.",
        ));
    }
    Ok(Authenticated {
        entry,
        secret,
        unspent,
    })
}

/// Records that a secret was used, at most every few minutes: the cached secret remembers the
/// write, so a client that asks all the time writes once per [`LAST_USED_RESOLUTION`]. Only
/// that write waits its turn in the writer queue: every request taking the turn to find it
/// had nothing to write queued each token behind the group commit being written.
pub fn touch_secret(
    conn: &mut AnyConnection,
    writer: &Writer,
    secret: &CachedSecret,
    now: NaiveDateTime,
) -> QueryResult<()> {
    if secret.used_within(now, LAST_USED_RESOLUTION) {
        return Ok(());
    }
    writer.hold(|| ClientSecret::touch(conn, secret.id, now))?;
    secret.record_use(now);
    Ok(())
}

/// Same length as a real digest (hex SHA-256).
const DUMMY_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[cfg(test)]
mod tests {
    use super::*;

    fn body(id: Option<&str>, secret: Option<&str>) -> BodyCredentials {
        BodyCredentials {
            client_id: id.map(Into::into),
            client_secret: secret.map(Into::into),
            ..Default::default()
        }
    }

    fn basic(raw: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(raw)).into_bytes()
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let p = presented(Some(&basic("my%20id:s%2Bc+r%3At")), &body(None, None)).unwrap();
        assert_eq!(
            p,
            Presented::Secret {
                client_id: "my id".into(),
                secret: "s+c r:t".into()
            }
        );
    }

    #[test]
    fn malformed_headers_are_invalid_client() {
        for header in [
            b"Basic".to_vec(),
            b"Basic !!!".to_vec(),
            b"Bearer abc".to_vec(),
            basic("no-colon"),
            basic(":secret"),
            basic("id:%FF"),
            vec![0xff, 0xfe],
        ] {
            let err = presented(Some(&header), &body(None, None)).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidClient, "{header:?}");
        }
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let err =
            presented(Some(&basic("id:secret")), &body(Some("id"), Some("secret"))).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let err = presented(Some(&basic("id:secret")), &body(Some("other"), None)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(presented(Some(&basic("id:secret")), &body(Some("id"), None)).is_ok());
    }

    #[test]
    fn body_methods() {
        assert_eq!(
            presented(None, &body(Some("id"), Some("s"))).unwrap(),
            Presented::Secret {
                client_id: "id".into(),
                secret: "s".into()
            }
        );
        assert_eq!(
            presented(None, &body(Some("id"), None)).unwrap(),
            Presented::PublicClient {
                client_id: "id".into()
            }
        );
        assert_eq!(
            presented(None, &body(None, Some("s"))).unwrap_err().code,
            ErrorCode::InvalidClient
        );
    }
}

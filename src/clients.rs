//! Registering applications: used by the CLI now and by the merchant portal.
//!
//! A new confidential client gets a 256-bit secret. Its keyed digest is stored for verification
//! and an encrypted copy so the owner can see it again; the secret itself is returned once, to
//! the caller, and never stored in clear.

use std::collections::BTreeSet;

use crate::crypto::{self, ServerKey};
use crate::db::models::token_request::ISSUED;
use crate::db::models::{
    Client, ClientSecret, ClientSettings, NewClient, NewClientSecret, RefreshToken, Scope,
    Security, TokenRequests, User,
};
use crate::db::{self, AnyConnection, DbError};
use crate::domain::{
    ClientId, ClientKeys, ClientName, GrantType, Invalid, RedirectUris, ScopeName, Scopes,
};

/// Prefix of every client secret, so that a leaked one is easy to recognise and scan for.
pub const SECRET_PREFIX: &str = "lks_";

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("no user named `{0}`")]
    UnknownOwner(String),
    #[error("{field} {message}")]
    Invalid {
        field: &'static str,
        message: Invalid,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for RegisterError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// What end users see of an application besides its name: all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientDetails {
    pub description: String,
    pub home_page_url: Option<String>,
    pub logo_url: Option<String>,
    pub privacy_policy_url: Option<String>,
}

/// What the caller asks for, before the database has been consulted.
#[derive(Debug)]
pub struct Registration {
    pub owner: String,
    pub name: ClientName,
    pub details: ClientDetails,
    pub redirect_uris: RedirectUris,
    /// `None`: the defaults for the client's kind.
    pub grant_types: Option<Vec<GrantType>>,
    /// `None`: every registered scope except OpenID Connect's.
    pub scopes: Option<Vec<ScopeName>>,
    pub confidential: bool,
    pub live: bool,
    /// A key-based client (`private_key_jwt`): its public keys, checked. It gets no secret.
    pub keys: Option<ClientKeys>,
    /// Pushed requests, DPoP, FAPI 2.0 ([`check_security`]).
    pub security: Security,
}

/// The rules for a client's [`Security`]: FAPI 2.0 needs a key-based client (`private_key_jwt`
/// is its only client authentication) and no password grant (which can carry neither a pushed
/// request nor a second factor). Pushed requests and DPoP alone fit any client.
pub fn check_security(
    security: Security,
    key_based: bool,
    grant_types: &[GrantType],
) -> Result<(), RegisterError> {
    if !security.fapi2 {
        return Ok(());
    }
    if !key_based {
        return Err(RegisterError::Invalid {
            field: "fapi2",
            message: Invalid::new(
                "needs private_key_jwt: register the application's public keys first (FAPI 2.0 allows no client secret)",
            ),
        });
    }
    if grant_types.contains(&GrantType::Password) {
        return Err(RegisterError::Invalid {
            field: "fapi2",
            message: Invalid::new("does not allow the password grant: turn it off first"),
        });
    }
    Ok(())
}

/// A client just created, with its secret in clear for this one time.
#[derive(Debug)]
pub struct Registered {
    pub client: Client,
    pub secret: Option<String>,
}

/// A new client secret: `lks_` and 256 random bits, base64url.
pub fn generate_secret() -> String {
    format!("{SECRET_PREFIX}{}", crypto::random_token(32))
}

/// OpenID Connect's scopes. A client gets them only when asked for (`--scope openid`, or the
/// box ticked in the portal): they are about signing people in, not about calling the API.
pub const IDENTITY_SCOPES: [&str; 3] = ["openid", "profile", "email"];

pub fn is_identity_scope(name: &str) -> bool {
    IDENTITY_SCOPES.contains(&name)
}

/// Rules that hold for every client, at creation and on every edit.
pub fn check_rules(
    confidential: bool,
    live: bool,
    grant_types: &[GrantType],
    redirect_uris: &RedirectUris,
) -> Result<(), RegisterError> {
    if !confidential && grant_types.contains(&GrantType::ClientCredentials) {
        return Err(RegisterError::Invalid {
            field: "grant types",
            message: Invalid::new(
                "cannot include client_credentials for a public client, which has no secret",
            ),
        });
    }
    if live {
        for uri in redirect_uris.iter() {
            uri.check_live().map_err(|message| RegisterError::Invalid {
                field: "redirect URI",
                message,
            })?;
        }
    }
    Ok(())
}

/// Checks the registration against the database and creates the client and its secret in one
/// transaction: either both exist afterwards or neither does.
pub fn register(
    conn: &mut AnyConnection,
    key: &ServerKey,
    reg: &Registration,
) -> Result<Registered, RegisterError> {
    register_as(conn, key, reg, false)
}

/// [`register`], and with `resource_server` the client is marked a resource server in the same
/// transaction: it may introspect every client's tokens (see
/// `oauth::introspect::may_introspect`). Only the operator's CLI does this.
pub fn register_as(
    conn: &mut AnyConnection,
    key: &ServerKey,
    reg: &Registration,
    resource_server: bool,
) -> Result<Registered, RegisterError> {
    let grant_types = reg.grant_types.clone().unwrap_or_else(|| {
        if reg.confidential {
            GrantType::confidential_defaults()
        } else {
            GrantType::public_defaults()
        }
    });
    let grant_types: Vec<GrantType> = grant_types
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    check_rules(reg.confidential, reg.live, &grant_types, &reg.redirect_uris)?;
    if reg.keys.is_some() && !reg.confidential {
        return Err(RegisterError::Invalid {
            field: "authentication",
            message: Invalid::new(
                "with private_key_jwt needs a confidential client: a public one proves nothing",
            ),
        });
    }
    if reg.keys.as_ref().is_some_and(ClientKeys::is_empty) {
        return Err(RegisterError::Invalid {
            field: "keys",
            message: Invalid::new("must hold at least one public key for private_key_jwt"),
        });
    }
    check_security(reg.security, reg.keys.is_some(), &grant_types)?;
    let jwks = reg.keys.as_ref().map(ClientKeys::to_stored);

    db::write_transaction(conn, |conn| {
        let owner = User::find_by_username(conn, &reg.owner.trim().to_lowercase())?
            .ok_or_else(|| RegisterError::UnknownOwner(reg.owner.clone()))?;
        let registered: Vec<String> = Scope::all(conn)?.into_iter().map(|s| s.name).collect();
        let scopes: Scopes = match &reg.scopes {
            None => registered
                .iter()
                .filter(|s| !is_identity_scope(s))
                .filter_map(|s| ScopeName::parse(s).ok())
                .collect(),
            Some(asked) => {
                if let Some(unknown) = asked
                    .iter()
                    .find(|s| !registered.iter().any(|r| r == s.as_str()))
                {
                    return Err(RegisterError::Invalid {
                        field: "scope",
                        message: Invalid::new(format!(
                            "`{unknown}` is not a registered scope (registered: {})",
                            registered.join(", ")
                        )),
                    });
                }
                Scopes::for_client(asked.iter().cloned()).map_err(|message| {
                    RegisterError::Invalid {
                        field: "scopes",
                        message,
                    }
                })?
            }
        };

        let now = db::now();
        let client_id = ClientId::generate();
        let client = Client::insert(
            conn,
            &NewClient {
                client_id: client_id.as_str(),
                name: reg.name.as_str(),
                description: &reg.details.description,
                home_page_url: reg.details.home_page_url.as_deref(),
                logo_url: reg.details.logo_url.as_deref(),
                privacy_policy_url: reg.details.privacy_policy_url.as_deref(),
                user_id: owner.id,
                is_live: reg.live,
                redirect_uri: &reg.redirect_uris.to_stored(),
                grant_types: &GrantType::join(&grant_types),
                scopes: &scopes.to_stored(),
                is_confidential: reg.confidential,
                is_enabled: true,
                created_at: now,
                updated_at: now,
                jwks: jwks.as_deref(),
                require_par: reg.security.require_par,
                dpop_bound: reg.security.dpop_bound,
                fapi2: reg.security.fapi2,
            },
        )?;
        User::mark_developer(conn, owner.id)?;
        let client = if resource_server {
            Client::set_resource_server(conn, client.id, true, db::now())?
        } else {
            client
        };
        let secret = if reg.confidential && reg.keys.is_none() {
            let secret = generate_secret();
            add_secret(conn, key, &client, &secret)?;
            Some(secret)
        } else {
            None
        };
        Ok(Registered { client, secret })
    })
}

/// Stores a secret for `client`: its keyed digest, an encrypted copy bound to the client's id,
/// and its last four characters.
pub fn add_secret(
    conn: &mut AnyConnection,
    key: &ServerKey,
    client: &Client,
    secret: &str,
) -> Result<ClientSecret, DbError> {
    let digest = key.client_secret_digest(secret);
    let encrypted = key.encrypt(secret.as_bytes(), &client.client_id);
    let hint: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    ClientSecret::insert(
        conn,
        &NewClientSecret {
            client_id: client.id,
            secret_digest: &digest,
            secret_encrypted: &encrypted,
            secret_hint: &hint,
            created_at: db::now(),
        },
    )
    .map_err(DbError::from)
}

/// An edit of an application's settings (its kind, confidential or public, never changes).
#[derive(Debug)]
pub struct Changes {
    pub name: ClientName,
    pub details: ClientDetails,
    pub redirect_uris: RedirectUris,
    pub grant_types: Vec<GrantType>,
    pub scopes: Scopes,
    pub live: bool,
    pub security: Security,
}

pub fn update(
    conn: &mut AnyConnection,
    client: &Client,
    changes: &Changes,
) -> Result<Client, RegisterError> {
    check_rules(
        client.is_confidential,
        changes.live,
        &changes.grant_types,
        &changes.redirect_uris,
    )?;
    check_security(
        changes.security,
        client.jwks.is_some(),
        &changes.grant_types,
    )?;
    let settings = ClientSettings {
        name: changes.name.as_str(),
        description: &changes.details.description,
        home_page_url: changes.details.home_page_url.as_deref(),
        logo_url: changes.details.logo_url.as_deref(),
        privacy_policy_url: changes.details.privacy_policy_url.as_deref(),
        redirect_uri: &changes.redirect_uris.to_stored(),
        grant_types: &GrantType::join(&changes.grant_types),
        scopes: &changes.scopes.to_stored(),
        is_live: changes.live,
        security: changes.security,
    };
    Client::update_settings(conn, client.id, &settings, db::now()).map_err(RegisterError::from)
}

/// How long the previous secret keeps working after a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grace {
    Now,
    OneHour,
    OneDay,
    SevenDays,
}

impl Grace {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "now" => Some(Self::Now),
            "1h" => Some(Self::OneHour),
            "24h" => Some(Self::OneDay),
            "7d" => Some(Self::SevenDays),
            _ => None,
        }
    }

    pub fn duration(self) -> chrono::TimeDelta {
        match self {
            Self::Now => chrono::TimeDelta::zero(),
            Self::OneHour => chrono::TimeDelta::hours(1),
            Self::OneDay => chrono::TimeDelta::hours(24),
            Self::SevenDays => chrono::TimeDelta::days(7),
        }
    }
}

/// Issues a new secret. The current one keeps working for `grace`; one still in its grace
/// period from an earlier rotation stops now, so at most two secrets are ever active.
pub fn rotate_secret(
    conn: &mut AnyConnection,
    key: &ServerKey,
    client: &Client,
    grace: Grace,
) -> Result<String, DbError> {
    let now = db::now();
    db::write_transaction(conn, |conn| {
        ClientSecret::begin_rotation(conn, client.id, now, now + grace.duration())?;
        let secret = generate_secret();
        add_secret(conn, key, client, &secret)?;
        Ok(secret)
    })
}

/// Why keys could not be added.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The document, or one of its keys, is not acceptable; said beside the field.
    #[error("The keys {0}")]
    Invalid(Invalid),
    /// A public client proves nothing, with keys or without.
    #[error("A public application cannot use private_key_jwt.")]
    Public,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for KeysError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Registers the public keys of a JWKS `document` (see `domain::ClientKeys::add`) for `client`,
/// and returns how many were added. A secret-based client becomes key-based: its secrets are
/// deleted in the same transaction, so from the commit on only assertions authenticate it.
pub fn add_keys(
    conn: &mut AnyConnection,
    client: &Client,
    document: &str,
) -> Result<usize, KeysError> {
    if !client.is_confidential {
        return Err(KeysError::Public);
    }
    let now = db::now();
    db::write_transaction(conn, |conn| {
        // The row as it is now, not as the page saw it: another tab may have added keys.
        let current = Client::find(conn, client.id)?
            .ok_or(DbError::Query(diesel::result::Error::NotFound))?;
        let mut keys = current.keys().unwrap_or_default();
        let added = keys.add(document, now).map_err(KeysError::Invalid)?;
        Client::set_jwks(conn, client.id, &keys.to_stored(), now)?;
        if current.jwks.is_none() {
            ClientSecret::delete_all_for(conn, client.id)?;
        }
        Ok(added)
    })
}

/// Removes the key with `kid` from a key-based client; whether it had one. Removing the last
/// key leaves the client key-based with none: it cannot authenticate until a key is added.
pub fn remove_key(conn: &mut AnyConnection, client: &Client, kid: &str) -> Result<bool, DbError> {
    let now = db::now();
    db::write_transaction(conn, |conn| {
        let Some(mut keys) = Client::find(conn, client.id)?.and_then(|c| c.keys()) else {
            return Ok(false);
        };
        if !keys.remove(kid) {
            return Ok(false);
        }
        Client::set_jwks(conn, client.id, &keys.to_stored(), now)?;
        Ok(true)
    })
}

/// The secret in clear, from its encrypted copy.
pub fn reveal(
    key: &ServerKey,
    client: &Client,
    secret: &ClientSecret,
) -> Result<String, crate::crypto::DecryptError> {
    let bytes = key.decrypt(&secret.secret_encrypted, &client.client_id)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| crate::crypto::DecryptError)
}

/// Days the activity page's chart and failure table cover, ending today (UTC).
pub const ACTIVITY_DAYS: i64 = 14;

/// What the activity page shows.
#[derive(Debug, serde::Serialize)]
pub struct Usage {
    /// Token requests per day, oldest first, [`ACTIVITY_DAYS`] days ending today (UTC).
    pub per_day: Vec<DayCount>,
    /// The failed requests of those days by error code and reason, the most frequent first.
    pub failures: Vec<FailureCount>,
    /// Distinct people other than the owner holding a live refresh token from this app.
    pub authorized_users: i64,
}

/// One day of token requests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DayCount {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub issued: i64,
    pub failed: i64,
}

/// Failed token requests with one error code and reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailureCount {
    pub error: String,
    pub reason: String,
    pub count: i64,
    pub last_at: chrono::NaiveDateTime,
}

/// The activity page's counts of `client`'s token requests (as `oauth::outcomes` wrote them:
/// what this instance counted is flushed first by the caller) and its authorized people. Two
/// statements.
pub fn usage(conn: &mut AnyConnection, client: &Client) -> diesel::QueryResult<Usage> {
    let now = db::now();
    let today = now.date();
    let first = today - chrono::TimeDelta::days(ACTIVITY_DAYS - 1);
    let mut per_day: Vec<DayCount> = (0..ACTIVITY_DAYS)
        .map(|i| DayCount {
            day: (first + chrono::TimeDelta::days(i))
                .format("%Y-%m-%d")
                .to_string(),
            issued: 0,
            failed: 0,
        })
        .collect();
    let rows = TokenRequests::for_client(conn, client.id, &per_day[0].day)?;
    let mut failures: Vec<FailureCount> = Vec::new();
    for row in rows {
        let Some(day) = per_day.iter_mut().find(|d| d.day == row.day) else {
            continue;
        };
        if row.outcome == ISSUED {
            day.issued += row.count;
            continue;
        }
        day.failed += row.count;
        match failures
            .iter_mut()
            .find(|f| f.error == row.outcome && f.reason == row.detail)
        {
            Some(f) => {
                f.count += row.count;
                f.last_at = f.last_at.max(row.last_at);
            }
            None => failures.push(FailureCount {
                error: row.outcome,
                reason: row.detail,
                count: row.count,
                last_at: row.last_at,
            }),
        }
    }
    failures.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_at.cmp(&a.last_at)));
    let authorized_users =
        RefreshToken::live_holders(conn, client.id, client.user_id, now)?.len() as i64;
    Ok(Usage {
        per_day,
        failures,
        authorized_users,
    })
}

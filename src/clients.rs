//! Registering applications: used by the CLI now and by the merchant portal.
//!
//! A new confidential client gets a 256-bit secret. Its keyed digest is stored for verification
//! and an encrypted copy so the owner can see it again; the secret itself is returned once, to
//! the caller, and never stored in clear.

use std::collections::BTreeSet;

use crate::crypto::{self, ServerKey};
use crate::db::models::{Client, ClientSecret, NewClient, NewClientSecret, Scope, User};
use crate::db::{self, AnyConnection, DbError};
use crate::domain::{ClientId, ClientName, GrantType, Invalid, RedirectUris, ScopeName, Scopes};

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

/// What the caller asks for, before the database has been consulted.
#[derive(Debug)]
pub struct Registration {
    pub owner: String,
    pub name: ClientName,
    pub redirect_uris: RedirectUris,
    /// `None`: the defaults for the client's kind.
    pub grant_types: Option<Vec<GrantType>>,
    /// `None`: every registered scope.
    pub scopes: Option<Vec<ScopeName>>,
    pub confidential: bool,
    pub live: bool,
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

/// Checks the registration against the database and creates the client and its secret in one
/// transaction: either both exist afterwards or neither does.
pub fn register(
    conn: &mut AnyConnection,
    key: &ServerKey,
    reg: &Registration,
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
    if !reg.confidential && grant_types.contains(&GrantType::ClientCredentials) {
        return Err(RegisterError::Invalid {
            field: "grant types",
            message: Invalid::new(
                "cannot include client_credentials for a public client, which has no secret",
            ),
        });
    }
    if reg.live {
        for uri in reg.redirect_uris.iter() {
            uri.check_live().map_err(|message| RegisterError::Invalid {
                field: "redirect URI",
                message,
            })?;
        }
    }

    db::write_transaction(conn, |conn| {
        let owner = User::find_by_username(conn, &reg.owner.trim().to_lowercase())?
            .ok_or_else(|| RegisterError::UnknownOwner(reg.owner.clone()))?;
        let registered: Vec<String> = Scope::all(conn)?.into_iter().map(|s| s.name).collect();
        let scopes: Scopes = match &reg.scopes {
            None => registered
                .iter()
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
                asked.iter().cloned().collect()
            }
        };

        let now = db::now();
        let client_id = ClientId::generate();
        let client = Client::insert(
            conn,
            &NewClient {
                client_id: client_id.as_str(),
                name: reg.name.as_str(),
                description: "",
                home_page_url: None,
                logo_url: None,
                privacy_policy_url: None,
                user_id: owner.id,
                is_live: reg.live,
                redirect_uri: &reg.redirect_uris.to_stored(),
                grant_types: &GrantType::join(&grant_types),
                scopes: &scopes.to_stored(),
                is_confidential: reg.confidential,
                is_enabled: true,
                created_at: now,
                updated_at: now,
            },
        )?;
        let secret = if reg.confidential {
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

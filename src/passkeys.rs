//! Passkeys (WebAuthn) as a second factor for merchant accounts, by the `webauthn-rs` crate
//! (the Kanidm project's; nothing of WebAuthn is written here).
//!
//! - The relying party is this server: its id is `LATCHKEY_ISSUER`'s host and the only origin
//!   it accepts is the issuer's. WebAuthn needs a domain name: on an issuer that is an IP address
//!   (the default `http://127.0.0.1:…`) passkeys are not offered, and the security page says why.
//! - A ceremony's state (the challenge, and which credentials may answer it) waits in the
//!   server-side session ([`crate::auth::session_store`]) between the page that starts it and
//!   the form that finishes it, and is taken out when used: a challenge is answered once.
//! - Passkeys are created with user verification required (a PIN or biometric on the device),
//!   and stand in for a TOTP code after the password. They are not offered as a first factor
//!   (passwordless): signing in without a username needs discoverable credentials, which
//!   security keys without storage cannot make, and the password step is where the lockout and
//!   the new-device email start. A passkey after the password is the clear, safe half of that.
//! - A passkey's answer is checked inside the sign-in lockout like any code
//!   ([`crate::mfa::verify_passkey`]): a page of wrong answers locks the account as wrong codes do.
//! - The signature counter is kept: an answer whose counter went backwards (a cloned
//!   authenticator) is refused by webauthn-rs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::db::models::{NewPasskey, StoredPasskey, User};
use crate::db::{self, AnyConnection, DbError};
use crate::domain::UserId;

/// Longest name a passkey may be given.
pub const NAME_MAX: usize = 64;
/// How many passkeys one account may register.
pub const MAX_PER_ACCOUNT: usize = 10;

/// This server as a WebAuthn relying party.
pub struct RelyingParty {
    webauthn: Webauthn,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty").finish_non_exhaustive()
    }
}

impl RelyingParty {
    /// The relying party for `issuer`; `None` if its host is not a domain name (an IP address),
    /// where browsers refuse WebAuthn.
    pub fn for_issuer(issuer: &str) -> Option<Self> {
        let origin = Url::parse(issuer).ok()?;
        let rp_id = origin.domain()?.to_owned();
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .ok()?
            .rp_name("Latchkey")
            .build()
            .ok()?;
        Some(Self { webauthn })
    }
}

/// A ceremony under way, as the session keeps it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Registration {
    user_id: UserId,
    user_handle: String,
    state: PasskeyRegistration,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Authentication {
    user_id: UserId,
    state: PasskeyAuthentication,
}

/// Why a passkey could not be added, said beside the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No answer, or one that is not a WebAuthn credential.
    Malformed,
    /// The browser's answer did not verify (another challenge, another origin, no user
    /// verification…): the page has to start over.
    NotVerified,
    /// This authenticator holds a passkey registered already.
    AlreadyRegistered,
    /// The account has as many passkeys as it may.
    TooMany,
}

impl Refusal {
    pub fn message(self) -> String {
        match self {
            Self::Malformed => {
                "Your browser did not create a passkey. Choose “Create passkey” and follow your browser’s prompts.".to_owned()
            }
            Self::NotVerified => {
                "That passkey could not be checked. Try again; if it keeps failing, try another device.".to_owned()
            }
            Self::AlreadyRegistered => {
                "That passkey is registered already. Use another device or security key.".to_owned()
            }
            Self::TooMany => format!(
                "An account can have at most {MAX_PER_ACCOUNT} passkeys. Remove one first."
            ),
        }
    }
}

fn passkey_of(stored: &StoredPasskey) -> Option<Passkey> {
    serde_json::from_str(&stored.credential)
        .inspect_err(
            |e| tracing::error!(passkey = stored.id, error = %e, "a stored passkey does not parse"),
        )
        .ok()
}

fn credential_id(passkey: &Passkey) -> String {
    let id: &[u8] = passkey.cred_id().as_ref();
    URL_SAFE_NO_PAD.encode(id)
}

/// Starts adding a passkey to `user`: the options for `navigator.credentials.create` (JSON)
/// and the ceremony to keep in the session. The account's passkeys are excluded, so the same
/// authenticator is not registered twice.
pub fn start_registration(
    rp: &RelyingParty,
    conn: &mut AnyConnection,
    user: &User,
) -> Result<Option<(String, Registration)>, DbError> {
    let existing = StoredPasskey::for_user(conn, user.id)?;
    let user_handle = existing
        .first()
        .map(|p| p.user_handle.clone())
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    let Ok(handle) = Uuid::parse_str(&user_handle) else {
        return Ok(None);
    };
    let exclude = existing
        .iter()
        .filter_map(passkey_of)
        .map(|p| p.cred_id().clone())
        .collect::<Vec<_>>();
    let display = if user.name.trim().is_empty() {
        &user.username
    } else {
        &user.name
    };
    let Ok((options, state)) =
        rp.webauthn
            .start_passkey_registration(handle, &user.username, display, Some(exclude))
    else {
        return Ok(None);
    };
    let Ok(options) = serde_json::to_string(&options) else {
        return Ok(None);
    };
    Ok(Some((
        options,
        Registration {
            user_id: user.id,
            user_handle,
            state,
        },
    )))
}

/// Finishes adding a passkey named `name` from the browser's `answer` (the JSON `passkey.js`
/// sends) to the ceremony. Stores it, or says why not.
pub fn finish_registration(
    rp: &RelyingParty,
    conn: &mut AnyConnection,
    user: &User,
    ceremony: &Registration,
    answer: &str,
    name: &str,
    now: NaiveDateTime,
) -> Result<Result<(), Refusal>, DbError> {
    if ceremony.user_id != user.id {
        return Ok(Err(Refusal::NotVerified));
    }
    let Ok(answer) = serde_json::from_str::<RegisterPublicKeyCredential>(answer) else {
        return Ok(Err(Refusal::Malformed));
    };
    let passkey = match rp
        .webauthn
        .finish_passkey_registration(&answer, &ceremony.state)
    {
        Ok(passkey) => passkey,
        Err(e) => {
            tracing::info!(error = ?e, "a passkey registration did not verify");
            return Ok(Err(Refusal::NotVerified));
        }
    };
    let Ok(credential) = serde_json::to_string(&passkey) else {
        return Ok(Err(Refusal::NotVerified));
    };
    let id = credential_id(&passkey);
    db::write_transaction(conn, |conn| {
        if StoredPasskey::for_user(conn, user.id)?.len() >= MAX_PER_ACCOUNT {
            return Ok::<_, diesel::result::Error>(Err(Refusal::TooMany));
        }
        let stored = StoredPasskey::insert(
            conn,
            &NewPasskey {
                user_id: user.id,
                credential_id: &id,
                user_handle: &ceremony.user_handle,
                name,
                credential: &credential,
                created_at: now,
            },
        )?;
        Ok(if stored {
            Ok(())
        } else {
            Err(Refusal::AlreadyRegistered)
        })
    })
    .map_err(DbError::from)
}

/// Starts asking `user` for one of their passkeys: the options for `navigator.credentials.get`
/// (JSON) and the ceremony to keep. `None` if the account has no passkey.
pub fn start_authentication(
    rp: &RelyingParty,
    conn: &mut AnyConnection,
    user_id: UserId,
) -> Result<Option<(String, Authentication)>, DbError> {
    let passkeys: Vec<Passkey> = StoredPasskey::for_user(conn, user_id)?
        .iter()
        .filter_map(passkey_of)
        .collect();
    if passkeys.is_empty() {
        return Ok(None);
    }
    let Ok((options, state)) = rp.webauthn.start_passkey_authentication(&passkeys) else {
        return Ok(None);
    };
    let Ok(options) = serde_json::to_string(&options) else {
        return Ok(None);
    };
    Ok(Some((options, Authentication { user_id, state })))
}

/// Checks the browser's `answer` to the ceremony for `user`; on success records the use (and
/// the new signature counter). Whether it verified. Not throttled here: callers go through
/// [`crate::mfa::verify_passkey`].
pub fn check_answer(
    rp: &RelyingParty,
    conn: &mut AnyConnection,
    user: &User,
    ceremony: &Authentication,
    answer: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    if ceremony.user_id != user.id {
        return Ok(false);
    }
    let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(answer) else {
        return Ok(false);
    };
    let result = match rp
        .webauthn
        .finish_passkey_authentication(&answer, &ceremony.state)
    {
        Ok(result) => result,
        Err(e) => {
            tracing::info!(error = ?e, "a passkey answer did not verify");
            return Ok(false);
        }
    };
    let used_id = URL_SAFE_NO_PAD.encode(<_ as AsRef<[u8]>>::as_ref(result.cred_id()));
    let stored = StoredPasskey::for_user(conn, user.id)?;
    let Some(row) = stored.iter().find(|p| p.credential_id == used_id) else {
        // Removed between the page and the answer.
        return Ok(false);
    };
    let updated = passkey_of(row).and_then(|mut passkey| {
        passkey
            .update_credential(&result)
            .filter(|changed| *changed)
            .and_then(|_| serde_json::to_string(&passkey).ok())
    });
    db::write_transaction(conn, |conn| {
        StoredPasskey::used(conn, row.id, updated.as_deref(), now)
    })?;
    Ok(true)
}

/// What the security page lists of a passkey.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub id: i64,
    pub name: String,
    pub added: String,
    pub last_used: Option<String>,
}

pub fn list(conn: &mut AnyConnection, user_id: UserId) -> Result<Vec<Listed>, DbError> {
    Ok(StoredPasskey::for_user(conn, user_id)?
        .into_iter()
        .map(|p| Listed {
            id: p.id,
            name: p.name,
            added: p.created_at.format("%Y-%m-%d").to_string(),
            last_used: p
                .last_used_at
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
        })
        .collect())
}

/// A passkey's name as typed: trimmed, and checked. The error is said beside the field.
pub fn check_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("Give the passkey a name, for example the device it is on.".to_owned());
    }
    if name.chars().count() > NAME_MAX {
        return Err(format!("A name has at most {NAME_MAX} characters."));
    }
    if name.chars().any(char::is_control) {
        return Err("A name cannot contain control characters.".to_owned());
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_needs_a_domain_name() {
        assert!(RelyingParty::for_issuer("https://auth.example.com").is_some());
        assert!(RelyingParty::for_issuer("http://localhost:8080").is_some());
        assert!(RelyingParty::for_issuer("http://127.0.0.1:8080").is_none());
        assert!(RelyingParty::for_issuer("http://[::1]:8080").is_none());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("  Work laptop ").unwrap(), "Work laptop");
        assert!(check_name("   ").is_err());
        assert!(check_name(&"x".repeat(NAME_MAX + 1)).is_err());
        assert!(check_name("a\u{7}b").is_err());
        assert_eq!(
            check_name(&"é".repeat(NAME_MAX)).unwrap().chars().count(),
            NAME_MAX
        );
    }
}

//! Moving everything encrypted or keyed under the server secret to a new secret: client-secret
//! digests and copies, signing keys' private halves and TOTP secrets (`latchkey secret-key
//! rotate`). Recovery codes are kept only as digests keyed by the old secret, so they cannot
//! move: they are voided, and their owners make new ones on their security page, which says
//! none are left.

use crate::crypto::ServerKey;
use crate::db::models::{ClientSecret, RecoveryCode, SigningKeyRow, UserTotp};
use crate::db::{self, AnyConnection};

#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    #[error("{0} cannot be decrypted with the current key: is LATCHKEY_SECRET_KEY the one in use?")]
    Decrypt(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// What a rekey moved, and what it voided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub client_secrets: usize,
    pub signing_keys: usize,
    pub totp_secrets: usize,
    /// Recovery codes deleted (their digests are keyed by the old secret).
    pub recovery_codes_voided: usize,
}

/// Re-encrypts and re-digests under `new`, all in one transaction.
pub fn rekey(
    conn: &mut AnyConnection,
    old: &ServerKey,
    new: &ServerKey,
) -> Result<Moved, RekeyError> {
    db::write_transaction(conn, |conn| {
        let secrets = ClientSecret::all_with_client_id(conn)?;
        for (secret, client_id) in &secrets {
            let clear = old
                .decrypt(&secret.secret_encrypted, client_id)
                .map_err(|_| RekeyError::Decrypt(format!("a secret of client {client_id}")))?;
            let clear = String::from_utf8_lossy(&clear).into_owned();
            ClientSecret::set_sealed(
                conn,
                secret.id,
                &new.client_secret_digest(&clear),
                &new.encrypt(clear.as_bytes(), client_id),
            )?;
        }
        let keys = SigningKeyRow::all(conn)?;
        for key in &keys {
            let private = old
                .decrypt(&key.private_key, &key.kid)
                .map_err(|_| RekeyError::Decrypt(format!("signing key {}", key.kid)))?;
            SigningKeyRow::set_private_key(conn, key.id, &new.encrypt(&private, &key.kid))?;
        }
        let totps = UserTotp::all(conn)?;
        for totp in &totps {
            let context = format!("totp:{}", totp.user_id);
            let secret = old.decrypt(&totp.secret_encrypted, &context).map_err(|_| {
                RekeyError::Decrypt(format!("the TOTP secret of user {}", totp.user_id))
            })?;
            UserTotp::set_secret(conn, totp.user_id, &new.encrypt(&secret, &context))?;
        }
        Ok(Moved {
            client_secrets: secrets.len(),
            signing_keys: keys.len(),
            totp_secrets: totps.len(),
            recovery_codes_voided: RecoveryCode::delete_every(conn)?,
        })
    })
}

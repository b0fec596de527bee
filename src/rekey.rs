//! Moving everything encrypted or keyed under the server secret to a new secret: client-secret
//! digests and copies, and signing keys' private halves (`latchkey secret-key rotate`).

use crate::crypto::ServerKey;
use crate::db::models::{ClientSecret, SigningKeyRow};
use crate::db::{self, AnyConnection};

#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    #[error("{0} cannot be decrypted with the current key: is LATCHKEY_SECRET_KEY the one in use?")]
    Decrypt(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Re-encrypts and re-digests under `new`, all in one transaction. Returns (client secrets,
/// signing keys) moved.
pub fn rekey(
    conn: &mut AnyConnection,
    old: &ServerKey,
    new: &ServerKey,
) -> Result<(usize, usize), RekeyError> {
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
        Ok((secrets.len(), keys.len()))
    })
}

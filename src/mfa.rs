//! A second factor for merchant accounts: TOTP (RFC 6238, computed by the `totp-rs` crate) and
//! ten single-use recovery codes.
//!
//! - The TOTP secret (160 random bits) is stored encrypted under the server key, bound to the
//!   account's id, like client secrets; while it is being set up it waits in the session,
//!   sealed the same way, and is stored only once a first code from it is right.
//! - A code is accepted for the current 30-second step or the one either side (clock drift),
//!   and once: the account's last accepted step is moved forward atomically
//!   ([`UserTotp::spend_step`]), so a code seen over a shoulder, or sent twice, fails the
//!   second time, on any instance.
//! - Recovery codes are random (`xxxxx-xxxxx`, about 49 bits), shown once, stored as keyed
//!   digests; each works once; making new ones voids the old.
//! - Every code checked, right or wrong, goes through the sign-in lockout (`auth::throttle`),
//!   per account and per address, exactly as passwords do: five wrong codes lock the account.

use chrono::NaiveDateTime;
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;
use totp_rs::{Algorithm, TOTP};

use crate::accounts::SignInError;
use crate::auth::throttle;
use crate::crypto::ServerKey;
use crate::db::models::{RecoveryCode, StoredPasskey, User, UserTotp};
use crate::db::{self, AnyConnection, DbError};
use crate::domain::UserId;
use crate::passkeys::{self, Authentication, RelyingParty};

/// RFC 6238's recommended step, in seconds.
pub const STEP: u64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// How many recovery codes an account gets.
pub const RECOVERY_CODES: usize = 10;
/// The alphabet of recovery codes: lower-case letters and digits without the look-alikes
/// (0/o, 1/l/i).
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A new TOTP secret: 160 bits, as RFC 4226 §4 recommends.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The `totp-rs` generator for `secret`, labelled for authenticator apps as `issuer:account`.
fn generator(secret: &[u8], issuer: &str, account: &str) -> Option<TOTP> {
    // The otpauth label may not contain a colon.
    let clean = |s: &str| s.replace(':', " ");
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP,
        secret.to_vec(),
        Some(clean(issuer)),
        clean(account),
    )
    .ok()
}

/// What the enrolment page shows: the `otpauth://` URL as a QR code (an SVG data URL, made on
/// the server so the page needs no script) and the secret as text, for typing in.
#[derive(Debug, serde::Serialize)]
pub struct Enrolment {
    pub secret_base32: String,
    pub otpauth_url: String,
    pub qr_data_url: String,
}

pub fn enrolment(secret: &[u8], issuer: &str, account: &str) -> Option<Enrolment> {
    use base64::Engine as _;
    let totp = generator(secret, issuer, account)?;
    let url = totp.get_url();
    let qr = qrcode::QrCode::new(url.as_bytes()).ok()?;
    let svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Some(Enrolment {
        secret_base32: totp.get_secret_base32(),
        otpauth_url: url,
        qr_data_url: format!(
            "data:image/svg+xml;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(svg.as_bytes())
        ),
    })
}

/// The time step `code` is right for, within one step of `now` (seconds since the epoch), in
/// time independent of the code.
pub fn matching_step(secret: &[u8], code: &str, now: u64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = generator(secret, "latchkey", "account")?;
    let current = now / STEP;
    let mut found = None;
    for step in [current.saturating_sub(1), current, current + 1] {
        let expected = totp.generate(step * STEP);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found.and_then(|s| i64::try_from(s).ok())
}

fn unix(now: NaiveDateTime) -> u64 {
    u64::try_from(now.and_utc().timestamp()).unwrap_or_default()
}

fn context(user_id: UserId) -> String {
    format!("totp:{user_id}")
}

/// Whether the account has a second factor: an authenticator app or a passkey.
pub fn has_factor(conn: &mut AnyConnection, user_id: UserId) -> Result<bool, DbError> {
    Ok(UserTotp::find(conn, user_id)?.is_some() || StoredPasskey::exists_for(conn, user_id)?)
}

/// What an account's security page says of its factor.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub totp_since: Option<String>,
    pub passkeys: Vec<passkeys::Listed>,
    pub recovery_codes_left: i64,
}

impl Status {
    /// Whether the account has any second factor.
    pub fn has_factor(&self) -> bool {
        self.totp_since.is_some() || !self.passkeys.is_empty()
    }
}

pub fn status(conn: &mut AnyConnection, user_id: UserId) -> Result<Status, DbError> {
    let totp = UserTotp::find(conn, user_id)?;
    Ok(Status {
        totp_since: totp.map(|t| t.created_at.format("%Y-%m-%d").to_string()),
        passkeys: passkeys::list(conn, user_id)?,
        recovery_codes_left: RecoveryCode::unused(conn, user_id)?,
    })
}

/// New recovery codes in clear (shown once) and their digests (stored).
fn new_recovery_codes(key: &ServerKey) -> (Vec<String>, Vec<String>) {
    let mut rng = rand::rngs::OsRng;
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let mut chars = [0u8; 10];
            for c in &mut chars {
                // Rejection sampling: no bias towards the alphabet's first letters.
                *c = loop {
                    let b = (rng.next_u32() & 0x1f) as usize;
                    if b < RECOVERY_ALPHABET.len() {
                        break RECOVERY_ALPHABET[b];
                    }
                };
            }
            let text = String::from_utf8_lossy(&chars).into_owned();
            format!("{}-{}", &text[..5], &text[5..])
        })
        .collect();
    let digests = codes
        .iter()
        .map(|c| key.recovery_code_digest(&normalize_recovery(c)))
        .collect();
    (codes, digests)
}

/// A recovery code as compared: lower case, without spaces and dashes.
fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Turns TOTP on with `secret` if `code` is right for it: stores the secret (encrypted), spends
/// the code's step, and makes ten recovery codes, which are returned in clear, once; none (an
/// empty list) if the account has unused codes already, from a passkey. `None` if the code is
/// wrong (nothing is stored).
pub fn enable_totp(
    conn: &mut AnyConnection,
    key: &ServerKey,
    user: &User,
    secret: &[u8],
    code: &str,
    now: NaiveDateTime,
) -> Result<Option<Vec<String>>, DbError> {
    let Some(step) = matching_step(secret, code, unix(now)) else {
        return Ok(None);
    };
    let encrypted = key.encrypt(secret, &context(user.id));
    let (codes, digests) = new_recovery_codes(key);
    let made = db::write_transaction(conn, |conn| {
        UserTotp::set(conn, user.id, &encrypted, now)?;
        UserTotp::spend_step(conn, user.id, step)?;
        if RecoveryCode::unused(conn, user.id)? > 0 {
            return Ok(false);
        }
        RecoveryCode::replace_all(conn, user.id, &digests, now).map(|()| true)
    })?;
    Ok(Some(if made { codes } else { Vec::new() }))
}

/// New recovery codes for an account with a factor, voiding the old ones; in clear, once.
pub fn regenerate_recovery_codes(
    conn: &mut AnyConnection,
    key: &ServerKey,
    user_id: UserId,
    now: NaiveDateTime,
) -> Result<Vec<String>, DbError> {
    let (codes, digests) = new_recovery_codes(key);
    db::write_transaction(conn, |conn| {
        RecoveryCode::replace_all(conn, user_id, &digests, now)
    })?;
    Ok(codes)
}

/// What is left after a factor was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Nothing was removed (the factor was not there).
    NotFound,
    /// Another factor remains; the recovery codes stay.
    OtherFactor,
    /// That was the last factor: the recovery codes went with it.
    Nothing,
}

/// After removing a factor: voids the recovery codes if no factor is left.
fn after_removal(conn: &mut AnyConnection, user_id: UserId) -> diesel::QueryResult<Left> {
    let totp = crate::db::models::UserTotp::find(conn, user_id)?.is_some();
    if totp || StoredPasskey::exists_for(conn, user_id)? {
        return Ok(Left::OtherFactor);
    }
    RecoveryCode::delete_all(conn, user_id)?;
    Ok(Left::Nothing)
}

/// Removes the account's authenticator app (and the recovery codes if no passkey is left).
pub fn remove_totp(conn: &mut AnyConnection, user_id: UserId) -> Result<Left, DbError> {
    Ok(db::write_transaction(conn, |conn| {
        if !UserTotp::delete(conn, user_id)? {
            return Ok(Left::NotFound);
        }
        after_removal(conn, user_id)
    })?)
}

/// Removes one of the account's passkeys (and the recovery codes if no factor is left).
pub fn remove_passkey(conn: &mut AnyConnection, user_id: UserId, id: i64) -> Result<Left, DbError> {
    Ok(db::write_transaction(conn, |conn| {
        if !StoredPasskey::delete(conn, user_id, id)? {
            return Ok(Left::NotFound);
        }
        after_removal(conn, user_id)
    })?)
}

/// Removes every factor and the recovery codes (`latchkey user mfa reset`). Whether there was
/// any.
pub fn remove_all(conn: &mut AnyConnection, user_id: UserId) -> Result<bool, DbError> {
    Ok(db::write_transaction(conn, |conn| {
        RecoveryCode::delete_all(conn, user_id)?;
        let passkeys = StoredPasskey::delete_all(conn, user_id)?;
        Ok::<_, diesel::result::Error>(UserTotp::delete(conn, user_id)? || passkeys > 0)
    })?)
}

/// Recovery codes for an account that just got its first factor: ten new ones, in clear,
/// once; `None` if it had codes already (a second factor keeps them).
pub fn first_recovery_codes(
    conn: &mut AnyConnection,
    key: &ServerKey,
    user_id: UserId,
    now: NaiveDateTime,
) -> Result<Option<Vec<String>>, DbError> {
    if RecoveryCode::unused(conn, user_id)? > 0 {
        return Ok(None);
    }
    regenerate_recovery_codes(conn, key, user_id, now).map(Some)
}

/// Which factor a right code was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Totp,
    RecoveryCode,
    Passkey,
}

impl Factor {
    /// How the new-sign-in email and the activity log name it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Totp => "an authenticator app code",
            Self::RecoveryCode => "a recovery code",
            Self::Passkey => "a passkey",
        }
    }
}

/// Checks `given` (a six-digit code from the authenticator app, or a recovery code) for
/// `user`, inside the sign-in lockout: a slot of the account's and the address's budgets is
/// reserved first, a wrong code keeps it, a right one gives it back.
pub fn verify(
    conn: &mut AnyConnection,
    key: &ServerKey,
    user: &User,
    given: &str,
    address: &str,
) -> Result<Result<Factor, SignInError>, DbError> {
    throttled(conn, user, address, |conn, now| {
        check(conn, key, user, given, now)
    })
}

/// Checks a passkey's `answer` to `ceremony` for `user`, inside the sign-in lockout as codes
/// are.
pub fn verify_passkey(
    conn: &mut AnyConnection,
    rp: &RelyingParty,
    user: &User,
    ceremony: &Authentication,
    answer: &str,
    address: &str,
) -> Result<Result<Factor, SignInError>, DbError> {
    throttled(conn, user, address, |conn, now| {
        Ok(
            passkeys::check_answer(rp, conn, user, ceremony, answer, now)?
                .then_some(Factor::Passkey),
        )
    })
}

/// Runs `check` with a slot of the account's and the address's sign-in budgets reserved.
fn throttled(
    conn: &mut AnyConnection,
    user: &User,
    address: &str,
    check: impl FnOnce(&mut AnyConnection, NaiveDateTime) -> Result<Option<Factor>, DbError>,
) -> Result<Result<Factor, SignInError>, DbError> {
    let now = db::now();
    let account_key = throttle::account_key(&user.username);
    let address_key = throttle::address_key(address);
    let keys = [
        (account_key.as_str(), throttle::ACCOUNT),
        (address_key.as_str(), throttle::ADDRESS),
    ];
    let attempt = match throttle::reserve(conn, &keys, now)? {
        Ok(attempt) => attempt,
        Err(locked) => {
            return Ok(Err(SignInError::Locked {
                minutes: locked.minutes_left(now),
            }));
        }
    };
    let right = check(conn, now)?;
    if let Some(factor) = right {
        attempt.succeeded(conn)?;
        return Ok(Ok(factor));
    }
    Ok(Err(match attempt.failed(conn, now)? {
        Some(locked) => SignInError::Locked {
            minutes: locked.minutes_left(now),
        },
        None => SignInError::Invalid,
    }))
}

fn check(
    conn: &mut AnyConnection,
    key: &ServerKey,
    user: &User,
    given: &str,
    now: NaiveDateTime,
) -> Result<Option<Factor>, DbError> {
    let digits: String = given.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit()) {
        let Some(totp) = UserTotp::find(conn, user.id)? else {
            return Ok(None);
        };
        let Ok(secret) = key.decrypt(&totp.secret_encrypted, &context(user.id)) else {
            tracing::error!(user = %user.id, "a TOTP secret does not decrypt under the server key");
            return Ok(None);
        };
        let Some(step) = matching_step(&secret, &digits, unix(now)) else {
            return Ok(None);
        };
        let fresh = db::write_transaction(conn, |conn| UserTotp::spend_step(conn, user.id, step))?;
        return Ok(fresh.then_some(Factor::Totp));
    }
    let normalized = normalize_recovery(given);
    if normalized.len() != 10 {
        return Ok(None);
    }
    let digest = key.recovery_code_digest(&normalized);
    let spent = db::write_transaction(conn, |conn| {
        RecoveryCode::spend(conn, user.id, &digest, now)
    })?;
    Ok(spent.then_some(Factor::RecoveryCode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_matches_its_step_and_the_ones_either_side_only() {
        let secret = new_secret();
        let totp = generator(&secret, "Latchkey", "acme").unwrap();
        let now = 1_800_000_015;
        let code = totp.generate(now);
        assert_eq!(
            matching_step(&secret, &code, now),
            Some((now / STEP) as i64)
        );
        assert!(
            matching_step(&secret, &code, now + STEP).is_some(),
            "a step late"
        );
        assert!(
            matching_step(&secret, &code, now - STEP).is_some(),
            "a step early"
        );
        assert_eq!(matching_step(&secret, &code, now + 2 * STEP), None);
        let spaced = format!(" {} {} ", &code[..3], &code[3..]);
        assert!(
            matching_step(&secret, &spaced, now).is_some(),
            "spaces are ignored"
        );
        for bad in ["", "12345", "1234567", "abcdef", "12 34 5"] {
            assert_eq!(matching_step(&secret, bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_read_leniently() {
        let key = ServerKey::from_material(&crate::config::SecretKeyMaterial(vec![3; 32]));
        let (codes, digests) = new_recovery_codes(&key);
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for (code, digest) in codes.iter().zip(&digests) {
            assert_eq!(code.len(), 11);
            assert_eq!(&code[5..6], "-");
            let typed = format!(" {} ", code.to_uppercase().replace('-', " "));
            assert_eq!(
                &key.recovery_code_digest(&normalize_recovery(&typed)),
                digest
            );
        }
    }

    #[test]
    fn the_enrolment_page_gets_a_qr_code_and_the_secret() {
        let secret = new_secret();
        let e = enrolment(&secret, "Latchkey: test", "acme").unwrap();
        assert!(
            e.otpauth_url.starts_with("otpauth://totp/"),
            "{}",
            e.otpauth_url
        );
        assert!(e.otpauth_url.contains("acme"));
        assert!(e.qr_data_url.starts_with("data:image/svg+xml;base64,"));
        assert_eq!(e.secret_base32.len(), 32);
    }
}

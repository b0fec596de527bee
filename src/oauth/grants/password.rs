//! `password` (RFC 6749 §4.3): off for a client until its owner allows it. Wrong credentials
//! for a known or unknown user get the same answer in the same time, and count against the
//! account's sign-in throttle, shared with the login page.

use chrono::NaiveDateTime;

use crate::auth::throttle;
use crate::db::AnyConnection;
use crate::db::models::{Client, User};
use crate::domain::{GrantType, Username};
use crate::oauth::error::OAuthError;
use crate::oauth::token::{Grantee, Issued, OAuthContext, RefreshPlan, mint, resolve_scope, store};

pub fn run(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    client: &Client,
    username: &str,
    given_password: &str,
    scope: Option<&str>,
    now: NaiveDateTime,
) -> Result<Issued, OAuthError> {
    let scope = resolve_scope(scope, &client.allowed_scopes())?;
    let key = throttle::account_key(username);
    let attempt = match throttle::reserve(conn, &[(&key, throttle::ACCOUNT)], now)? {
        Ok(attempt) => attempt,
        Err(locked) => return Err(locked_error(locked, now)),
    };

    let user = match Username::parse(username) {
        Ok(name) => User::find_by_username(conn, name.as_str())?,
        Err(_) => None,
    };
    // argon2id for a known user, the same work on a dummy hash for an unknown one.
    let verified = ctx
        .passwords
        .verify(given_password, user.as_ref().map(|u| u.password.as_str()));
    let user = match user {
        Some(user) if verified => user,
        _ => {
            return Err(match attempt.failed(conn, now)? {
                Some(locked) => locked_error(locked, now),
                None => OAuthError::invalid_grant("The username or password is incorrect."),
            });
        }
    };
    attempt.succeeded(conn)?;

    let who = Grantee {
        client,
        user_id: user.id,
        grant_type: GrantType::Password,
        scope,
        authorization_code_id: None,
    };
    let plan = if client
        .allowed_grant_types()
        .contains(&GrantType::RefreshToken)
    {
        RefreshPlan::NewFamily
    } else {
        RefreshPlan::None
    };
    let minted = mint(ctx, &who, plan, now)?;
    ctx.writer
        .transaction(conn, |conn| store(conn, ctx, &who, minted, now))
}

fn locked_error(locked: throttle::Locked, now: NaiveDateTime) -> OAuthError {
    let minutes = locked.minutes_left(now);
    OAuthError::invalid_grant(format!(
        "Too many failed sign-in attempts for this account. Try again in {minutes} minute{}.",
        if minutes == 1 { "" } else { "s" }
    ))
}

//! `password` (RFC 6749 §4.3): off for a client until its owner allows it. The username and
//! password are checked by [`accounts::sign_in`], exactly as on the login page: wrong
//! credentials for a known or unknown user get the same answer in the same time, and count
//! against the same two lockouts, the account's and the caller's address's.
//!
//! The address counts here too, although an app's server sends every user's attempts from one
//! address: without it, any merchant who turns the grant on for its own client could spray
//! passwords across many accounts from one address, and make argon2 work without limit, where
//! the login page would stop it after twenty failures. RFC 9700 §2.4 says this grant must not
//! be used at all; a server that sends many users' passwords from one address should move to
//! the authorization-code flow, where each person signs in from their own.

use chrono::NaiveDateTime;

use crate::accounts::{self, SignInError};
use crate::db::AnyConnection;
use crate::db::models::Client;
use crate::domain::GrantType;
use crate::oauth::context::OAuthContext;
use crate::oauth::error::OAuthError;
use crate::oauth::issue::{Grantee, Issued, RefreshPlan, mint, resolve_scope, store};

/// The resource owner's credentials (RFC 6749 §4.3.2), and the address they came from.
pub struct ResourceOwner<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub address: &'a str,
}

pub fn run(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    client: &Client,
    owner: &ResourceOwner<'_>,
    scope: Option<&str>,
    dpop_jkt: Option<&str>,
    now: NaiveDateTime,
) -> Result<Issued, OAuthError> {
    let scope = resolve_scope(scope, &client.allowed_scopes())?;
    let user = match accounts::sign_in(
        conn,
        &ctx.passwords,
        owner.username,
        owner.password,
        owner.address,
        None,
    )? {
        Ok(signed_in) => signed_in,
        Err(SignInError::Invalid) => {
            return Err(OAuthError::invalid_grant(
                "The username or password is incorrect.",
            ));
        }
        Err(SignInError::Locked { minutes }) => {
            return Err(OAuthError::invalid_grant(format!(
                "Too many failed sign-in attempts. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )));
        }
    };

    // The grant carries a password and nothing else: an account that has a second factor
    // must sign in where the factor is asked for.
    if user.has_factor {
        return Err(OAuthError::invalid_grant(
            "This account has two-step sign-in, which the password grant cannot carry: use the authorization-code flow, where the person enters their code.",
        ));
    }
    let who = Grantee {
        client,
        user_id: user.user.id,
        grant_type: GrantType::Password,
        scope,
        authorization_code_id: None,
        dpop_jkt,
    };
    let plan = RefreshPlan::new_family_if_allowed(client);
    let minted = mint(ctx, &who, plan, now)?;
    crate::db::write_transaction(conn, |conn| store(conn, ctx, &who, minted, now))
}

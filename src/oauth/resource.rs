//! What the resources behind this server answer to a bearer token: `/v1/user/profile` (Revenue
//! Monster's, scope `get_user_profile`) and OpenID Connect's userinfo (Core §5.3, scope
//! `openid`). Each checks the token with [`bearer::verify`] and then the scope it needs, and
//! returns what the response may say about the token's user.

use serde::Serialize;

use super::bearer::{self, BearerError, Presented};
use super::context::OAuthContext;
use crate::db::AnyConnection;
use crate::domain::UserId;

/// The scope `/v1/user/profile` needs.
pub const PROFILE_SCOPE: &str = "get_user_profile";

/// `/v1/user/profile`'s body: the token's user as Revenue Monster describes one.
#[derive(Debug, Serialize)]
pub struct Profile {
    pub id: UserId,
    pub username: String,
    pub name: String,
}

/// OIDC Core §5.3.2's claims about the token's user. The address only with scope `email`
/// (§5.4).
#[derive(Debug, Serialize)]
pub struct UserInfo {
    pub sub: String,
    pub name: String,
    pub preferred_username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// Verifies `token` and requires `scope` of it: `insufficient_scope` naming it otherwise
/// (RFC 6750 §3.1).
pub fn require(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    token: &Presented,
    scope: &'static str,
) -> Result<bearer::Verified, BearerError> {
    let verified = bearer::verify(conn, ctx, token)?;
    if !verified.claims.has_scope(scope) {
        return Err(BearerError::InsufficientScope(scope));
    }
    Ok(verified)
}

/// `GET /v1/user/profile`.
pub fn profile(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    token: &Presented,
) -> Result<Profile, BearerError> {
    let user = require(conn, ctx, token, PROFILE_SCOPE)?.user;
    Ok(Profile {
        id: user.id,
        username: user.username,
        name: user.name,
    })
}

/// `GET|POST /oauth/userinfo`.
pub fn userinfo(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    token: &Presented,
) -> Result<UserInfo, BearerError> {
    let verified = require(conn, ctx, token, "openid")?;
    let with_email = verified.claims.has_scope("email");
    let user = verified.user;
    Ok(UserInfo {
        sub: user.id.to_string(),
        name: user.name,
        preferred_username: user.username,
        email_verified: with_email.then_some(user.email_verified_at.is_some()),
        email: with_email.then_some(user.email),
    })
}

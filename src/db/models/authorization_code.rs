//! `client_authorization_codes`: codes by SHA-256 digest, single use, bound to the client,
//! redirect URI, user, scope and PKCE challenge (RFC 6749 §4.1.2, RFC 7636 §4.4).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};

use crate::db::AnyConnection;
use crate::db::schema::{client_access_tokens, client_authorization_codes, client_refresh_tokens};
use crate::domain::{AuthorizationCodeId, ClientRowId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = client_authorization_codes)]
pub struct AuthorizationCode {
    pub id: AuthorizationCodeId,
    pub client_id: ClientRowId,
    pub user_id: UserId,
    /// SHA-256 of the code.
    pub code: String,
    pub scope: String,
    pub is_used: bool,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    pub expired_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    /// When the person signed in, for the id_token's `auth_time`.
    pub auth_time: Option<NaiveDateTime>,
    /// Whether the authorization request named `redirect_uri`: then the token request must name
    /// it too (RFC 6749 §4.1.3).
    pub redirect_uri_given: bool,
}

/// What a token request must match to spend a code ([`AuthorizationCode::claim`]).
#[derive(Debug)]
pub struct ClaimTerms<'a> {
    /// SHA-256 of the code presented.
    pub digest: &'a str,
    /// The client redeeming it.
    pub client: ClientRowId,
    /// The `redirect_uri` of the token request: the code's, or none if its authorization request
    /// named none.
    pub redirect_uri: Option<&'a str>,
    /// The S256 challenge of the `code_verifier` sent, or `None`: then the code must have been
    /// issued without a challenge.
    pub challenge: Option<&'a str>,
    pub now: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = client_authorization_codes)]
pub struct NewAuthorizationCode<'a> {
    pub client_id: ClientRowId,
    pub user_id: UserId,
    pub code: &'a str,
    pub scope: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: Option<&'a str>,
    pub code_challenge_method: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub expired_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub auth_time: Option<NaiveDateTime>,
    pub redirect_uri_given: bool,
}

impl AuthorizationCode {
    pub fn insert(conn: &mut AnyConnection, new: &NewAuthorizationCode<'_>) -> QueryResult<()> {
        diesel::insert_into(client_authorization_codes::table)
            .values(new)
            .execute(conn)
            .map(|_| ())
    }

    pub fn find_by_digest(
        conn: &mut AnyConnection,
        digest: &str,
    ) -> QueryResult<Option<AuthorizationCode>> {
        client_authorization_codes::table
            .filter(client_authorization_codes::code.eq(digest))
            .select(AuthorizationCode::as_select())
            .get_result(conn)
            .optional()
    }

    /// Spends the code if it is unused, unexpired, issued to `terms.client`, and `terms` match
    /// it (redirect URI and PKCE challenge), and returns it with the scopes the person's consent
    /// to the code's client covers at that moment (`None`: no consent any more), in one
    /// statement: `UPDATE … WHERE … RETURNING *, (SELECT scope FROM consents …)`. `None`: no
    /// such code (wrong, spent, expired, another client's, or a term not met: the caller reads
    /// the code to say which). Exactly one of any number of concurrent redemptions wins.
    pub fn claim(
        conn: &mut AnyConnection,
        terms: &ClaimTerms<'_>,
    ) -> QueryResult<Option<(AuthorizationCode, Option<String>)>> {
        use client_authorization_codes as codes;
        // Written out, with every column qualified: diesel renders the columns of an UPDATE
        // statement without their table, so a subquery built from the DSL came out as
        // `WHERE user_id = user_id AND client_id = client_id`, which both databases resolve
        // to the consents' own columns: it read whichever consent came first in the table.
        let consent = diesel::dsl::sql::<Nullable<Text>>(
            "(SELECT consents.scope FROM consents \
              WHERE consents.user_id = client_authorization_codes.user_id \
              AND consents.client_id = client_authorization_codes.client_id)",
        );
        // RFC 6749 §4.1.3: the redirect URI the request named, or none if it named none.
        let (uri, uri_given) = (
            terms.redirect_uri.unwrap_or(""),
            terms.redirect_uri.is_some(),
        );
        let redirect = codes::redirect_uri
            .eq(uri)
            .and(uri_given.into_sql::<Bool>())
            .or(codes::redirect_uri_given
                .eq(false)
                .and((!uri_given).into_sql::<Bool>()));
        // RFC 7636 §4.6: the challenge the verifier answers, or none for a code issued without.
        let (challenge, has_challenge) = (terms.challenge.unwrap_or(""), terms.challenge.is_some());
        let pkce = codes::code_challenge
            .eq(challenge)
            .and(has_challenge.into_sql::<Bool>())
            .or(codes::code_challenge
                .is_null()
                .and((!has_challenge).into_sql::<Bool>()));
        // Built per backend: what RETURNING selects is typed by its backend.
        macro_rules! claim {
            () => {
                diesel::update(
                    codes::table
                        .filter(codes::code.eq(terms.digest))
                        .filter(codes::is_used.eq(false))
                        .filter(codes::client_id.eq(terms.client))
                        .filter(codes::expired_at.gt(terms.now))
                        .filter(redirect)
                        .filter(pkce),
                )
                .set(codes::is_used.eq(true))
                .returning((AuthorizationCode::as_returning(), consent))
            };
        }
        // diesel's MultiConnection has no RETURNING, but both backends do.
        match conn {
            AnyConnection::Sqlite(c) => claim!().get_result(c),
            AnyConnection::Postgres(c) => claim!().get_result(c),
        }
        .optional()
    }

    /// Retires every code `user_id` holds for `client` that is not yet redeemed: they expire now,
    /// so a code issued just before the person revoked the application gets nothing. Returns
    /// how many there were.
    pub fn retire_outstanding(
        conn: &mut AnyConnection,
        user_id: UserId,
        client: ClientRowId,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(
            client_authorization_codes::table
                .filter(client_authorization_codes::user_id.eq(user_id))
                .filter(client_authorization_codes::client_id.eq(client))
                .filter(client_authorization_codes::is_used.eq(false))
                .filter(client_authorization_codes::expired_at.gt(now)),
        )
        .set(client_authorization_codes::expired_at.eq(now))
        .execute(conn)
    }

    /// Revokes every token issued from the code, and every later token of their families
    /// (RFC 6749 §4.1.2: a code used twice SHOULD revoke what it issued).
    pub fn revoke_issued(
        conn: &mut AnyConnection,
        id: AuthorizationCodeId,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        let families: Vec<String> = client_refresh_tokens::table
            .filter(client_refresh_tokens::client_authorization_code_id.eq(id))
            .select(client_refresh_tokens::family_id)
            .distinct()
            .load(conn)?;
        for family in &families {
            super::RefreshToken::revoke_family(conn, family, now)?;
            super::AccessToken::revoke_family(conn, family, now)?;
        }
        diesel::update(
            client_access_tokens::table
                .filter(client_access_tokens::client_authorization_code_id.eq(id))
                .filter(client_access_tokens::revoked_at.is_null()),
        )
        .set(client_access_tokens::revoked_at.eq(now))
        .execute(conn)?;
        Ok(())
    }

    /// Deletes the codes that expired before `before`, at most `batch` rows per statement.
    /// Returns how many went.
    pub fn delete_expired(
        conn: &mut AnyConnection,
        before: NaiveDateTime,
        batch: i64,
    ) -> QueryResult<usize> {
        Ok(delete_in_batches!(
            conn,
            client_authorization_codes,
            client_authorization_codes::expired_at.lt(before),
            batch
        ))
    }
}

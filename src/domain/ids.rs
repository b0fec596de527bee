//! Row ids that cross module boundaries, one type per table, so that passing one where another
//! is expected does not compile: a user's id where an application's is wanted, say, in the many
//! functions that take both (`Consent::find(conn, user, client)`).
//!
//! Each is an `i64` in a `BigInt` column, on either backend: it binds and loads as one
//! ([`ToSql`] and [`FromSql`] for every backend `i64` has them for, the `AnyConnection`'s
//! included), serializes as the bare number (`serde(transparent)`: sessions store user ids,
//! responses show them), and prints as the number.
//!
//! [`ClientRowId`] is `clients.id`, the numeric row id that other tables refer to; the public
//! text id that clients send is [`ClientId`](super::ClientId), `clients.client_id`. The other
//! tables' ids stay `i64` where they never leave their model's callers (a secret's, a session's,
//! an email token's, a signing key's): only ids that travel between modules, and could be
//! swapped for one another there, have a type.
//!
//! ```compile_fail
//! use latchkey::domain::{ClientRowId, UserId};
//! fn owner(_: UserId) {}
//! owner(ClientRowId::new(1)); // an application's row id is not a user's
//! ```

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::BigInt;

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            AsExpression,
            FromSqlRow,
            serde::Serialize,
            serde::Deserialize,
        )]
        #[diesel(sql_type = BigInt)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// The id of a row read by other means (a path segment, a token's `sub`, a test).
            pub const fn new(raw: i64) -> Self {
                Self(raw)
            }

            /// The number, for where only a number will do (a JWT's `sub`, a log field).
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map(Self)
            }
        }

        impl<DB> ToSql<BigInt, DB> for $name
        where
            DB: Backend,
            i64: ToSql<BigInt, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.0.to_sql(out)
            }
        }

        impl<DB> FromSql<BigInt, DB> for $name
        where
            DB: Backend,
            i64: FromSql<BigInt, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                i64::from_sql(bytes).map(Self)
            }
        }
    };
}

row_id! {
    /// `users.id`, and every `user_id` column: whom a token, code, consent, session, email
    /// link or audit event is about, and who owns an application.
    UserId
}

row_id! {
    /// `clients.id`, and every column that refers to it (`client_secrets.client_id`,
    /// `consents.client_id`, the codes' and tokens' `client_id`, `audit_events.client_id`).
    /// Not the public `client_id` text, which is [`ClientId`](super::ClientId).
    ClientRowId
}

row_id! {
    /// `client_authorization_codes.id`, and the tokens' `client_authorization_code_id`: the code
    /// a token was issued from, so a replayed code can revoke what it issued.
    AuthorizationCodeId
}

row_id! {
    /// `client_refresh_tokens.id`, and `client_access_tokens.client_refresh_token_id`: the
    /// refresh token an access token was issued from.
    RefreshTokenId
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::Nullable;

    use super::*;
    use crate::config::DatabaseUrl;
    use crate::db::models::{
        AccessToken, AuditEvent, AuthorizationCode, Client, Consent, NewAccessToken,
        NewAuthorizationCode, NewClient, NewRefreshToken, NewUser, RefreshToken, SessionRow, User,
    };
    use crate::db::{self, AnyConnection, ConnectionManager};

    fn conn() -> AnyConnection {
        let mut conn = ConnectionManager::new(DatabaseUrl::Sqlite(":memory:".into()))
            .establish()
            .unwrap();
        db::migrate(&mut conn).unwrap();
        conn
    }

    /// Bound as a parameter and read back as a column, bare and nullable.
    #[test]
    fn ids_round_trip_as_bound_values() {
        let mut conn = conn();
        macro_rules! round_trip {
            ($id:expr) => {{
                let id = $id;
                let back = diesel::select(id.into_sql::<BigInt>())
                    .get_result(&mut conn)
                    .unwrap();
                assert_eq!(id, back);
                let back = diesel::select(Some(id).into_sql::<Nullable<BigInt>>())
                    .get_result(&mut conn)
                    .unwrap();
                assert_eq!(Some(id), back);
            }};
        }
        round_trip!(UserId::new(i64::MAX));
        round_trip!(ClientRowId::new(-7));
        round_trip!(AuthorizationCodeId::new(0));
        round_trip!(RefreshTokenId::new(i64::MIN));
        let none: Option<UserId> = diesel::select(None::<UserId>.into_sql::<Nullable<BigInt>>())
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(none, None);
    }

    /// Written through the models' columns and read back into their fields.
    #[test]
    fn ids_round_trip_through_the_tables() {
        let mut conn = conn();
        let now = db::now();
        let user = User::insert(
            &mut conn,
            &NewUser {
                name: "Ada",
                username: "ada",
                password: "x",
                email: None,
                email_verified_at: None,
                created_at: now,
                updated_at: now,
                is_developer: false,
            },
        )
        .unwrap();
        assert_eq!(User::find(&mut conn, user.id).unwrap().unwrap().id, user.id);
        let client = Client::insert(
            &mut conn,
            &NewClient {
                client_id: "c1",
                name: "App",
                description: "",
                home_page_url: None,
                logo_url: None,
                privacy_policy_url: None,
                user_id: user.id,
                is_live: false,
                redirect_uri: "https://app.example/cb",
                grant_types: "authorization_code",
                scopes: "",
                is_confidential: true,
                is_enabled: true,
                created_at: now,
                updated_at: now,
                jwks: None,
                require_par: false,
                dpop_bound: false,
                fapi2: false,
            },
        )
        .unwrap();
        assert_eq!(client.user_id, user.id);
        assert_eq!(
            Client::list_owned(&mut conn, user.id).unwrap()[0].id,
            client.id
        );

        Consent::grant(&mut conn, user.id, client.id, "profile", now).unwrap();
        let consent = Consent::find(&mut conn, user.id, client.id)
            .unwrap()
            .unwrap();
        assert_eq!((consent.user_id, consent.client_id), (user.id, client.id));

        // Nullable columns.
        AuditEvent::record(&mut conn, Some(user.id), Some(client.id), "a", "", None).unwrap();
        AuditEvent::record(&mut conn, None, None, "b", "", None).unwrap();
        let events = AuditEvent::for_client(&mut conn, client.id, 10).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].user_id, events[0].client_id),
            (Some(user.id), Some(client.id))
        );
        let later = now + chrono::TimeDelta::hours(1);
        SessionRow::insert(&mut conn, "k", Some(user.id), "{}", now, later).unwrap();
        let session = SessionRow::find_live(&mut conn, "k", now).unwrap().unwrap();
        assert_eq!(session.user_id, Some(user.id));

        // A code, the refresh token issued from it, and the access token issued from both.
        AuthorizationCode::insert(
            &mut conn,
            &NewAuthorizationCode {
                client_id: client.id,
                user_id: user.id,
                code: "code",
                scope: "profile",
                redirect_uri: "https://app.example/cb",
                code_challenge: None,
                code_challenge_method: None,
                nonce: None,
                expired_at: later,
                created_at: now,
                auth_time: None,
                redirect_uri_given: false,
            },
        )
        .unwrap();
        let code = AuthorizationCode::find_by_digest(&mut conn, "code")
            .unwrap()
            .unwrap();
        assert_eq!((code.client_id, code.user_id), (client.id, user.id));
        let refresh_id = RefreshToken::insert(
            &mut conn,
            &NewRefreshToken {
                client_id: client.id,
                user_id: user.id,
                refresh_token: "refresh",
                grant_type: "authorization_code",
                scope: "profile",
                audience: "api",
                family_id: "f",
                client_authorization_code_id: Some(code.id),
                expired_at: later,
                created_at: now,
                dpop_jkt: None,
            },
        )
        .unwrap();
        let refresh = RefreshToken::find_by_digest(&mut conn, "refresh")
            .unwrap()
            .unwrap();
        assert_eq!(refresh.id, refresh_id);
        assert_eq!(refresh.client_authorization_code_id, Some(code.id));
        AccessToken::insert(
            &mut conn,
            &NewAccessToken {
                client_id: client.id,
                user_id: user.id,
                client_refresh_token_id: Some(refresh_id),
                access_token: "access",
                grant_type: "authorization_code",
                scope: "profile",
                audience: "api",
                client_authorization_code_id: Some(code.id),
                expired_at: later,
                created_at: now,
            },
        )
        .unwrap();
        let (access, _, holder) = AccessToken::find_with_user(&mut conn, "access")
            .unwrap()
            .unwrap();
        assert_eq!(holder.id, user.id);
        assert_eq!(
            (
                access.client_refresh_token_id,
                access.client_authorization_code_id
            ),
            (Some(refresh_id), Some(code.id))
        );
        assert_eq!(
            RefreshToken::live_holders(&mut conn, client.id, UserId::new(0), now).unwrap(),
            vec![user.id]
        );
    }

    #[test]
    fn ids_serialize_and_print_as_the_bare_number() {
        let id = UserId::new(42);
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<UserId>("42").unwrap(), id);
        assert_eq!(id.to_string(), "42");
        assert_eq!("42".parse::<UserId>().unwrap(), id);
        assert_eq!(ClientRowId::new(9).to_string(), "9");
        assert_eq!(
            serde_json::to_string(&Some(RefreshTokenId::new(-1))).unwrap(),
            "-1"
        );
    }
}

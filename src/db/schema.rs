//! The one schema for both backends, kept by hand with portable SQL types only
//! (`BigInt`, `Text`, `Bool`, `Timestamp`), so the same queries compile for SQLite and PostgreSQL.
//! It must match both trees under `migrations/`; the test suite checks it against a migrated
//! database of either kind.

diesel::table! {
    users (id) {
        id -> BigInt,
        name -> Text,
        username -> Text,
        password -> Text,
        email -> Nullable<Text>,
        email_verified_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        is_developer -> Bool,
    }
}

diesel::table! {
    scopes (id) {
        id -> BigInt,
        name -> Text,
        description -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    clients (id) {
        id -> BigInt,
        client_id -> Text,
        name -> Text,
        description -> Text,
        home_page_url -> Nullable<Text>,
        logo_url -> Nullable<Text>,
        privacy_policy_url -> Nullable<Text>,
        user_id -> BigInt,
        is_live -> Bool,
        redirect_uri -> Text,
        grant_types -> Text,
        scopes -> Text,
        is_confidential -> Bool,
        is_enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        is_resource_server -> Bool,
        jwks -> Nullable<Text>,
        require_par -> Bool,
        dpop_bound -> Bool,
        fapi2 -> Bool,
    }
}

diesel::table! {
    client_secrets (id) {
        id -> BigInt,
        client_id -> BigInt,
        secret_digest -> Text,
        secret_encrypted -> Text,
        secret_hint -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// One row (id 1): a counter that triggers bump on every change to `clients` and
    /// `client_secrets` (except `last_used_at`); see `db::client_cache`.
    client_changes (id) {
        id -> BigInt,
        counter -> BigInt,
    }
}

diesel::table! {
    client_authorization_codes (id) {
        id -> BigInt,
        client_id -> BigInt,
        user_id -> BigInt,
        code -> Text,
        scope -> Text,
        is_used -> Bool,
        redirect_uri -> Text,
        code_challenge -> Nullable<Text>,
        code_challenge_method -> Nullable<Text>,
        nonce -> Nullable<Text>,
        expired_at -> Timestamp,
        created_at -> Timestamp,
        auth_time -> Nullable<Timestamp>,
        redirect_uri_given -> Bool,
    }
}

diesel::table! {
    client_refresh_tokens (id) {
        id -> BigInt,
        client_id -> BigInt,
        user_id -> BigInt,
        refresh_token -> Text,
        grant_type -> Text,
        scope -> Text,
        audience -> Text,
        family_id -> Text,
        client_authorization_code_id -> Nullable<BigInt>,
        expired_at -> Timestamp,
        created_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        dpop_jkt -> Nullable<Text>,
    }
}

diesel::table! {
    client_access_tokens (id) {
        id -> BigInt,
        client_id -> BigInt,
        user_id -> BigInt,
        client_refresh_token_id -> Nullable<BigInt>,
        access_token -> Text,
        grant_type -> Text,
        scope -> Text,
        audience -> Text,
        client_authorization_code_id -> Nullable<BigInt>,
        expired_at -> Timestamp,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    signing_keys (id) {
        id -> BigInt,
        kid -> Text,
        algorithm -> Text,
        private_key -> Text,
        public_jwk -> Text,
        created_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    login_attempts (id) {
        id -> BigInt,
        throttle_key -> Text,
        failures -> BigInt,
        first_failure_at -> Timestamp,
        last_failure_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        session_key -> Text,
        user_id -> Nullable<BigInt>,
        state -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    email_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        purpose -> Text,
        token -> Text,
        email -> Nullable<Text>,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        user_id -> Nullable<BigInt>,
        client_id -> Nullable<BigInt>,
        action -> Text,
        detail -> Text,
        ip -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    consents (id) {
        id -> BigInt,
        user_id -> BigInt,
        client_id -> BigInt,
        scope -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    pushed_requests (id) {
        id -> Text,
        client_id -> BigInt,
        request -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    used_jtis (id) {
        id -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    user_totp (user_id) {
        user_id -> BigInt,
        secret_encrypted -> Text,
        last_step -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    recovery_codes (code_digest) {
        code_digest -> Text,
        user_id -> BigInt,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    passkeys (id) {
        id -> BigInt,
        user_id -> BigInt,
        credential_id -> Text,
        user_handle -> Text,
        name -> Text,
        credential -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    account_notices (user_id, kind) {
        user_id -> BigInt,
        kind -> Text,
        sent_at -> Timestamp,
    }
}

diesel::table! {
    token_requests (client_id, day, outcome, detail) {
        client_id -> BigInt,
        day -> Text,
        outcome -> Text,
        detail -> Text,
        count -> BigInt,
        last_at -> Timestamp,
    }
}

diesel::joinable!(clients -> users (user_id));
diesel::joinable!(consents -> clients (client_id));
diesel::joinable!(pushed_requests -> clients (client_id));
diesel::joinable!(client_secrets -> clients (client_id));
diesel::joinable!(client_authorization_codes -> clients (client_id));
diesel::joinable!(client_refresh_tokens -> clients (client_id));
diesel::joinable!(client_access_tokens -> clients (client_id));
diesel::joinable!(client_access_tokens -> client_refresh_tokens (client_refresh_token_id));

diesel::allow_tables_to_appear_in_same_query!(
    pushed_requests,
    used_jtis,
    user_totp,
    recovery_codes,
    passkeys,
    account_notices,
    token_requests,
    users,
    scopes,
    clients,
    client_secrets,
    client_changes,
    client_authorization_codes,
    client_refresh_tokens,
    client_access_tokens,
    signing_keys,
    login_attempts,
    sessions,
    email_tokens,
    audit_events,
    consents,
);

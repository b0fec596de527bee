//! The authorization endpoint's protocol logic (RFC 6749 §4.1.1–4.1.2, RFC 7636, RFC 9700).
//!
//! Checks run in the order that decides where an error may go: first the client and the
//! redirect URI, whose errors are shown on our own page and never redirected (§4.1.2.1, so the
//! endpoint cannot be used as an open redirector); then everything else, whose errors go back to
//! the verified redirect URI with `error`, `error_description` and `state`.
//!
//! Once a request is valid, [`decide`] says what happens next from the session and the stored
//! consent, honouring OpenID Connect's `prompt` and `max_age` (OIDC Core §3.1.2.1): sign in
//! (again), ask on the consent page, issue a code at once, or, for `prompt=none`, an error back
//! to the client instead of any page.

use serde::{Deserialize, Serialize};
use url::Url;

use super::params::{self, Params};
use super::pkce;
use super::prompt::{self, Prompt, Prompts};
use crate::crypto;
use crate::db::models::authorization_code::NewAuthorizationCode;
use crate::db::models::{AuthorizationCode, Client, Consent};
use crate::db::{self, AnyConnection};
use crate::domain::Scopes;

/// Reads an authorization request's query string: the names of [`params::AUTHORIZE`], in
/// either spelling, with a repeat noted rather than refused until the redirect URI is known.
pub fn read_query(query: &str) -> Params {
    Params::from_query(query, params::AUTHORIZE)
}

/// A request that passed every check, kept in the session while the person signs in and decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Random id, echoed by the consent form, so a form can only answer the request it showed.
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Scopes,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    /// Whether the request named `redirect_uri` (then the token request must, RFC 6749 §4.1.3).
    /// Defaults for requests stored by an older version: they are treated as having named it.
    #[serde(default = "named")]
    pub redirect_uri_given: bool,
    /// OIDC Core §3.1.2.1 `prompt`.
    #[serde(default)]
    pub prompt: Prompts,
    /// OIDC Core §3.1.2.1 `max_age`: the longest time, in seconds, since the person last
    /// entered their password.
    #[serde(default)]
    pub max_age: Option<u64>,
    /// When the request arrived, in seconds since the epoch: a sign-in at or after it is fresh.
    #[serde(default)]
    pub created_at: i64,
}

fn named() -> bool {
    true
}

/// Why a request was refused, and where the answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown or disabled client, or a redirect URI that is not registered: shown on our page.
    Page {
        title: &'static str,
        message: String,
    },
    /// Anything else: a redirect to the verified redirect URI.
    Redirect(Url),
}

/// Builds `redirect_uri` with `pairs` appended to its query, with a URL library (never by
/// string concatenation).
pub fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Option<Url> {
    let mut url = Url::parse(redirect_uri).ok()?;
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
    }
    Some(url)
}

fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> Refusal {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    match redirect_with(redirect_uri, &pairs) {
        Some(url) => Refusal::Redirect(url),
        None => Refusal::Page {
            title: "Invalid redirect URI",
            message: "The application's redirect URI cannot be used.".into(),
        },
    }
}

/// Checks an authorization request (§4.1.1) against the database.
pub fn validate(
    conn: &mut AnyConnection,
    params: &Params,
) -> diesel::QueryResult<Result<(Client, Pending), Refusal>> {
    let page = |title: &'static str, message: &str| {
        Ok(Err(Refusal::Page {
            title,
            message: message.to_owned(),
        }))
    };
    let Some(client_id) = params.get("client_id") else {
        return page(
            "Unknown application",
            "The request does not say which application is asking (client_id is missing).",
        );
    };
    if matches!(params.repeated(), Some("client_id" | "redirect_uri")) {
        return page(
            "Invalid request",
            "The request names its application or redirect URI more than once.",
        );
    }
    let client = match Client::find_by_client_id(conn, client_id)? {
        Some(client) if client.is_enabled => client,
        Some(_) => {
            return page(
                "Application disabled",
                "This application has been disabled by its owner.",
            );
        }
        None => {
            return page(
                "Unknown application",
                "No application has this client_id. Please contact the maker of the app you tried to use.",
            );
        }
    };
    // Exact, byte-for-byte match (RFC 9700 §4.1.3); may be left out only with one registered.
    let registered = client.redirect_uris();
    let redirect_uri = match params.get("redirect_uri") {
        Some(uri) if registered.contains_exact(uri) => uri.to_owned(),
        None if registered.len() == 1 => registered
            .iter()
            .next()
            .map(|u| u.as_str().to_owned())
            .unwrap_or_default(),
        None => {
            return page(
                "Invalid redirect URI",
                "The request has no redirect_uri, and the application registered more than one.",
            );
        }
        Some(_) => {
            return page(
                "Invalid redirect URI",
                "The redirect URI does not match any URI this application registered. Redirect URIs must match exactly.",
            );
        }
    };
    let state = params.get("state");
    let fail = |error: &str, description: &str| {
        Ok(Err(error_redirect(
            &redirect_uri,
            error,
            description,
            state,
        )))
    };

    if let Some(name) = params.repeated() {
        return fail(
            "invalid_request",
            &format!("The `{name}` parameter was sent more than once."),
        );
    }
    // OIDC Core §6.1, §6.2: a request object or a reference to one would be signed parameters
    // that override these; until they are supported, refuse rather than answer the outer ones.
    if params.get("request").is_some() {
        return fail(
            "request_not_supported",
            "Request objects (the `request` parameter) are not supported.",
        );
    }
    if params.get("request_uri").is_some() {
        return fail(
            "request_uri_not_supported",
            "The `request_uri` parameter is not supported.",
        );
    }
    match params.get("response_type") {
        Some("code") => {}
        None => return fail("invalid_request", "The response_type parameter is missing."),
        Some(_) => {
            return fail(
                "unsupported_response_type",
                "Only response_type=code is supported.",
            );
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return fail("invalid_request", "Only response_mode=query is supported.");
    }
    let allowed = client.allowed_scopes();
    let scope = match params.get("scope").map(Scopes::parse) {
        None => allowed.clone(),
        Some(Err(e)) => return fail("invalid_scope", &format!("The scope {e}.")),
        Some(Ok(asked)) if asked.is_empty() => allowed.clone(),
        Some(Ok(asked)) => {
            if let Some(extra) = asked.iter().find(|s| !allowed.contains(s.as_str())) {
                return fail(
                    "invalid_scope",
                    &format!("The scope `{extra}` is not allowed for this application."),
                );
            }
            asked
        }
    };
    let challenge = params.get("code_challenge");
    match (challenge, params.get("code_challenge_method")) {
        (None, Some(_)) => {
            return fail(
                "invalid_request",
                "code_challenge_method was sent without a code_challenge.",
            );
        }
        (Some(_), Some(method)) if method != pkce::S256 => {
            return fail(
                "invalid_request",
                "Only the S256 code_challenge_method is supported.",
            );
        }
        // RFC 7636 §4.3: without a method the default is `plain`, which is refused.
        (Some(_), None) => {
            return fail("invalid_request", "code_challenge_method=S256 is required.");
        }
        (Some(c), Some(_)) if !pkce::is_valid_challenge(c) => {
            return fail(
                "invalid_request",
                "The code_challenge is not a valid S256 challenge.",
            );
        }
        (None, None) if !client.is_confidential => {
            return fail(
                "invalid_request",
                "PKCE is required: send code_challenge and code_challenge_method=S256.",
            );
        }
        _ => {}
    }
    let prompt = match params.get("prompt").map(Prompts::parse) {
        None => Prompts::default(),
        Some(Ok(prompt)) => prompt,
        Some(Err(description)) => return fail("invalid_request", &description),
    };
    let max_age = match params.get("max_age").map(prompt::parse_max_age) {
        None => None,
        Some(Some(seconds)) => Some(seconds),
        Some(None) => {
            return fail(
                "invalid_request",
                "max_age must be a non-negative whole number of seconds.",
            );
        }
    };
    if !client
        .allowed_grant_types()
        .contains(&crate::domain::GrantType::AuthorizationCode)
    {
        return fail(
            "unauthorized_client",
            "This application may not use the authorization code grant.",
        );
    }
    let pending = Pending {
        id: crypto::random_token(16),
        client_id: client.client_id.clone(),
        redirect_uri,
        scope,
        state: state.map(str::to_owned),
        code_challenge: challenge.map(str::to_owned),
        nonce: params.get("nonce").map(str::to_owned),
        redirect_uri_given: params.get("redirect_uri").is_some(),
        prompt,
        max_age,
        created_at: db::now().and_utc().timestamp(),
    };
    Ok(Ok((client, pending)))
}

/// Whether the person already granted this application every scope asked for.
pub fn already_granted(granted: Option<&Scopes>, pending: &Pending) -> bool {
    granted.is_some_and(|g| pending.scope.is_subset(g))
}

/// What the authorization endpoint does next with a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Sign in (again) and come back: nobody is signed in, or the sign-in is older than
    /// `prompt=login` or `max_age` allow. The request waits in the session meanwhile.
    SignIn,
    /// Ask on the consent page.
    Consent,
    /// Issue a code without a page: the person already agreed to every scope asked for.
    Issue,
    /// `prompt=none` and the person would have to see a page: this error goes back to the
    /// client instead (OIDC Core §3.1.2.6, `login_required` or `consent_required`).
    Refuse(Refusal),
}

/// The signed-in person's sign-in, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedIn {
    /// When they entered their password, in seconds since the epoch.
    pub at: i64,
}

impl SignedIn {
    /// The sign-in time as stored with a code, for the id_token's `auth_time`.
    pub fn auth_time(self) -> Option<chrono::NaiveDateTime> {
        chrono::DateTime::from_timestamp(self.at, 0).map(|t| t.naive_utc())
    }
}

/// Whether `pending` needs the person to sign in (again) first: nobody is signed in, or the
/// sign-in is older than the request and the request asked for a fresh one (`prompt=login`), or
/// older than its `max_age`. A sign-in at or after the request arrived is always fresh.
pub fn needs_sign_in(pending: &Pending, signed_in: Option<SignedIn>, now: i64) -> bool {
    match signed_in {
        None => true,
        Some(SignedIn { at }) => {
            let fresh = at >= pending.created_at;
            let too_old = pending
                .max_age
                .is_some_and(|max| u64::try_from(now.saturating_sub(at)).unwrap_or(0) > max);
            !fresh && (pending.prompt.contains(Prompt::Login) || too_old)
        }
    }
}

/// Decides the next step for `pending` (OIDC Core §3.1.2.1, §3.1.2.3, §3.1.2.4), given who is
/// signed in, what they agreed to before (`granted`), and the time now (seconds since the
/// epoch).
///
/// A sign-in at or after the request arrived is fresh: it satisfies `prompt=login` and any
/// `max_age`, so signing in again from the login page ends in a code rather than asking once
/// more (`max_age=0` is `prompt=login`, as §3.1.2.1 says).
pub fn decide(
    pending: &Pending,
    signed_in: Option<SignedIn>,
    granted: Option<&Scopes>,
    now: i64,
) -> Step {
    let silent = pending.prompt.contains(Prompt::None);
    if needs_sign_in(pending, signed_in, now) {
        return if silent {
            refuse(
                pending,
                "login_required",
                "The user must sign in, and prompt=none does not allow it.",
            )
        } else {
            Step::SignIn
        };
    }
    let must_ask =
        pending.prompt.contains(Prompt::Consent) || pending.prompt.contains(Prompt::SelectAccount);
    if already_granted(granted, pending) && !must_ask {
        Step::Issue
    } else if silent {
        refuse(
            pending,
            "consent_required",
            "The user must consent, and prompt=none does not allow a consent page.",
        )
    } else {
        Step::Consent
    }
}

fn refuse(pending: &Pending, error: &str, description: &str) -> Step {
    Step::Refuse(error_redirect(
        &pending.redirect_uri,
        error,
        description,
        pending.state.as_deref(),
    ))
}

/// The person's answer on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    /// The consent form's `decision` value; `None` for anything but its two buttons.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "allow" => Some(Self::Allow),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }
}

/// Records the consent and issues a code (§4.1.2): 256 random bits, stored as a digest, bound
/// to the client, redirect URI, user, scope and PKCE challenge. Returns the redirect.
pub fn approve(
    conn: &mut AnyConnection,
    client: &Client,
    user_id: i64,
    pending: &Pending,
    code_ttl: std::time::Duration,
    auth_time: chrono::NaiveDateTime,
) -> diesel::QueryResult<Url> {
    let now = db::now();
    db::write_transaction(conn, |conn| {
        let previous = Consent::find(conn, user_id, client.id)?
            .map(|c| Scopes::from_stored(&c.scope))
            .unwrap_or_default();
        let union: Scopes = previous
            .iter()
            .chain(pending.scope.iter())
            .cloned()
            .collect();
        Consent::grant(conn, user_id, client.id, &union.to_stored(), now)?;
        issue_code(conn, client, user_id, pending, code_ttl, auth_time)
    })
}

/// Issues a code under a consent already given (§4.1.2), without writing the consent again.
/// `auth_time` is when the person entered their password: the id_token carries it (OIDC Core
/// §2, required when the request had `max_age`; we always send it).
pub fn issue_code(
    conn: &mut AnyConnection,
    client: &Client,
    user_id: i64,
    pending: &Pending,
    code_ttl: std::time::Duration,
    auth_time: chrono::NaiveDateTime,
) -> diesel::QueryResult<Url> {
    let now = db::now();
    let code = crypto::random_token(32);
    AuthorizationCode::insert(
        conn,
        &NewAuthorizationCode {
            client_id: client.id,
            user_id,
            code: &crypto::token_digest(&code),
            scope: &pending.scope.to_stored(),
            redirect_uri: &pending.redirect_uri,
            code_challenge: pending.code_challenge.as_deref(),
            code_challenge_method: pending.code_challenge.as_ref().map(|_| pkce::S256),
            nonce: pending.nonce.as_deref(),
            expired_at: now
                + chrono::TimeDelta::seconds(i64::try_from(code_ttl.as_secs()).unwrap_or(600)),
            created_at: now,
            auth_time: Some(auth_time),
            redirect_uri_given: pending.redirect_uri_given,
        },
    )?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = &pending.state {
        pairs.push(("state", state));
    }
    redirect_with(&pending.redirect_uri, &pairs).ok_or(diesel::result::Error::NotFound)
}

/// The redirect for a person who said no (§4.1.2.1 `access_denied`).
pub fn deny(pending: &Pending) -> Option<Url> {
    let mut pairs = vec![
        ("error", "access_denied"),
        ("error_description", "The user denied the request."),
    ];
    if let Some(state) = &pending.state {
        pairs.push(("state", state));
    }
    redirect_with(&pending.redirect_uri, &pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(prompt: &str, max_age: Option<u64>) -> Pending {
        Pending {
            id: "r".into(),
            client_id: "1".into(),
            redirect_uri: "https://a.example/cb".into(),
            scope: Scopes::from_stored("get_user_profile"),
            state: Some("s".into()),
            code_challenge: None,
            nonce: None,
            redirect_uri_given: true,
            prompt: Prompts::parse(prompt).unwrap(),
            max_age,
            created_at: 1_000,
        }
    }

    fn error_of(step: &Step) -> Option<String> {
        match step {
            Step::Refuse(Refusal::Redirect(url)) => url
                .query_pairs()
                .find(|(n, _)| n == "error")
                .map(|(_, v)| v.into_owned()),
            _ => None,
        }
    }

    /// What one decision is made from: the request's prompt and max_age, the sign-in, and
    /// whether the person agreed before.
    struct Case {
        name: &'static str,
        prompt: &'static str,
        max_age: Option<u64>,
        signed_in: Option<SignedIn>,
        agreed: bool,
    }

    fn decide_case(c: &Case) -> Step {
        let granted = Scopes::parse("get_user_profile").unwrap();
        let now = 1_010;
        decide(
            &pending(c.prompt, c.max_age),
            c.signed_in,
            c.agreed.then_some(&granted),
            now,
        )
    }

    #[test]
    fn decisions_follow_prompt_max_age_and_remembered_consent() {
        // The request arrived at 1000 and it is 1010 now.
        let old = Some(SignedIn { at: 900 });
        let fresh = Some(SignedIn { at: 1_000 });
        let case = |name, prompt, max_age, signed_in, agreed| Case {
            name,
            prompt,
            max_age,
            signed_in,
            agreed,
        };
        let steps = [
            (case("nobody signed in", "", None, None, true), Step::SignIn),
            (case("remembered consent", "", None, old, true), Step::Issue),
            (case("no consent yet", "", None, old, false), Step::Consent),
            (
                case("prompt=login, old", "login", None, old, true),
                Step::SignIn,
            ),
            (
                case("prompt=login, fresh", "login", None, fresh, true),
                Step::Issue,
            ),
            (case("max_age=0, old", "", Some(0), old, true), Step::SignIn),
            (
                case("max_age=0, fresh", "", Some(0), fresh, true),
                Step::Issue,
            ),
            (
                case("max_age=60, 110 s old", "", Some(60), old, true),
                Step::SignIn,
            ),
            (
                case("max_age=600, 110 s old", "", Some(600), old, true),
                Step::Issue,
            ),
            (
                case("prompt=consent", "consent", None, old, true),
                Step::Consent,
            ),
            (
                case("select_account", "select_account", None, old, true),
                Step::Consent,
            ),
            (
                case("prompt=none, agreed", "none", None, old, true),
                Step::Issue,
            ),
        ];
        for (c, expected) in &steps {
            assert_eq!(&decide_case(c), expected, "{}", c.name);
        }
        let refused = [
            (
                case("none, nobody signed in", "none", None, None, true),
                "login_required",
            ),
            (
                case("none, max_age=0, old", "none", Some(0), old, true),
                "login_required",
            ),
            (
                case("none, no consent", "none", None, old, false),
                "consent_required",
            ),
        ];
        for (c, error) in &refused {
            assert_eq!(
                error_of(&decide_case(c)).as_deref(),
                Some(*error),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn redirects_keep_the_registered_query_and_encode_values() {
        let url = redirect_with(
            "https://a.example/cb?tenant=7",
            &[("code", "x y"), ("state", "a&b=c")],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://a.example/cb?tenant=7&code=x+y&state=a%26b%3Dc"
        );
    }
}

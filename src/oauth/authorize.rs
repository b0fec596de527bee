//! The authorization endpoint's protocol logic (RFC 6749 §4.1.1–4.1.2, RFC 7636, RFC 9700).
//!
//! Checks run in the order that decides where an error may go: first the client and the
//! redirect URI, whose errors are shown on our own page and never redirected (§4.1.2.1, so the
//! endpoint cannot be used as an open redirector); then everything else, whose errors go back to
//! the verified redirect URI with `error`, `error_description` and `state`.
//!
//! Once a request is valid, [`next`] says what happens next from the session and the stored
//! consent, honouring OpenID Connect's `prompt` and `max_age` (OIDC Core §3.1.2.1): sign in
//! (again), ask on the consent page, issue a code at once, or, for `prompt=none`, an error back
//! to the client instead of any page.
//!
//! The endpoint's three requests are one function each, over typed inputs, returning a typed
//! [`Outcome`] that `routes::authorize` only turns into HTTP:
//! - [`start`]: `GET /oauth/authorize`, a new request;
//! - [`resume`]: back from the login page with the request that waited in the session;
//! - [`answer`]: the consent page's Allow or Deny.
//!
//! Each ends in a [`Step`]: sign in, the consent page ([`ConsentView`]), an
//! [`AuthorizationResponse`] to the client (a code, or an [`AuthorizeError`]), or our own error
//! page ([`ErrorPage`]) when the client or redirect URI cannot be trusted.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use url::Url;

use super::context::OAuthContext;
use super::params::{self, Params};
use super::pkce;
use super::prompt::{self, Prompt, Prompts};
use crate::crypto;
use crate::db::models::authorization_code::NewAuthorizationCode;
use crate::db::models::{AuthorizationCode, Client, Consent, Scope, User};
use crate::db::{self, AnyConnection, CachedClient, ClientCache};
use crate::domain::{ClientRowId, GrantType, Granted, Scopes, UserId};

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
    /// The application's name when the request arrived, for the sign-in page ("to continue to
    /// …"), which then needs no lookup. Empty in requests stored by an older version.
    #[serde(default)]
    pub client_name: String,
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

/// The `error` values of an authorization error response (RFC 6749 §4.1.2.1, OIDC Core
/// §3.1.2.6 and §6.1). The token endpoint's codes are [`super::error::ErrorCode`]: the two
/// never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizeError {
    InvalidRequest,
    UnauthorizedClient,
    AccessDenied,
    UnsupportedResponseType,
    InvalidScope,
    /// `prompt=none`, and the person would have to sign in.
    LoginRequired,
    /// `prompt=none`, and the person would have to see the consent page.
    ConsentRequired,
    RequestNotSupported,
    RequestUriNotSupported,
}

impl AuthorizeError {
    /// The `error` value sent to the client.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
        }
    }
}

/// What an authorization response gives the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `code` (§4.1.2): the code in clear, as the client receives it; the database has its
    /// digest.
    Code(String),
    /// `error` and `error_description` (§4.1.2.1).
    Error {
        error: AuthorizeError,
        description: String,
    },
}

/// An authorization response to a verified redirect URI (§4.1.2, §4.1.2.1). It carries `iss`
/// (RFC 9207 §2), so a client that talks to several servers can tell which one answered and
/// refuse a response from the wrong one (the mix-up attack, RFC 9700 §4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationResponse {
    redirect_uri: Url,
    pub grant: Grant,
    pub state: Option<String>,
    pub iss: String,
}

impl AuthorizationResponse {
    /// A response to `redirect_uri`, which must parse (registered ones always do: they were
    /// checked when registered); otherwise our page explains.
    fn to(
        redirect_uri: &str,
        grant: Grant,
        state: Option<&str>,
        iss: &str,
    ) -> Result<Self, ErrorPage> {
        let redirect_uri = Url::parse(redirect_uri).map_err(|_| ErrorPage {
            title: "Invalid redirect URI",
            message: "The application's redirect URI cannot be used.".into(),
        })?;
        Ok(Self {
            redirect_uri,
            grant,
            state: state.map(str::to_owned),
            iss: iss.to_owned(),
        })
    }

    /// The redirect URI the response goes back to, as registered.
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// The redirect: the registered URI with `code` (or `error` and `error_description`),
    /// `state` and `iss` appended to its own query, with a URL library.
    pub fn url(&self) -> Url {
        let mut pairs: Vec<(&str, &str)> = match &self.grant {
            Grant::Code(code) => vec![("code", code)],
            Grant::Error { error, description } => {
                vec![("error", error.code()), ("error_description", description)]
            }
        };
        if let Some(state) = &self.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.iss));
        append(&self.redirect_uri, &pairs)
    }
}

/// Our own error page's title and message: for requests that must not be redirected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub title: &'static str,
    pub message: String,
}

impl ErrorPage {
    pub(crate) fn new(title: &'static str, message: &str) -> Self {
        Self {
            title,
            message: message.to_owned(),
        }
    }
}

/// Why a request was refused, and where the answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown or disabled client, or a redirect URI that is not registered: shown on our page.
    Page(ErrorPage),
    /// Anything else: an error response to the verified redirect URI.
    Redirect(AuthorizationResponse),
}

fn append(url: &Url, pairs: &[(&str, &str)]) -> Url {
    let mut url = url.clone();
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
    }
    url
}

/// Builds `redirect_uri` with `pairs` appended to its query, with a URL library (never by
/// string concatenation).
pub fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Option<Url> {
    Url::parse(redirect_uri).ok().map(|url| append(&url, pairs))
}

fn error_response(
    redirect_uri: &str,
    error: AuthorizeError,
    description: &str,
    state: Option<&str>,
    iss: &str,
) -> Refusal {
    let grant = Grant::Error {
        error,
        description: description.to_owned(),
    };
    match AuthorizationResponse::to(redirect_uri, grant, state, iss) {
        Ok(response) => Refusal::Redirect(response),
        Err(page) => Refusal::Page(page),
    }
}

/// No `client_id` is longer (ours are far shorter): a longer one is unknown without a lookup.
const MAX_CLIENT_ID_LEN: usize = 256;

/// How an authorization request reached [`validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// In the query of `/oauth/authorize`.
    Direct,
    /// Pushed to `/oauth/par` by its authenticated client (RFC 9126).
    Pushed,
}

/// Checks an authorization request (§4.1.1) against the client (from `clients`, the client
/// cache). `iss` goes into any error response.
pub fn validate(
    conn: &mut AnyConnection,
    clients: &ClientCache,
    params: &Params,
    iss: &str,
    arrival: Arrival,
) -> diesel::QueryResult<Result<(Arc<CachedClient>, Pending), Refusal>> {
    let page =
        |title: &'static str, message: &str| Ok(Err(Refusal::Page(ErrorPage::new(title, message))));
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
    // Longer than any client_id we issue: refused before the cache, which keeps unknown ids too.
    let found = if client_id.len() > MAX_CLIENT_ID_LEN {
        None
    } else {
        clients.client(conn, client_id, db::now())?
    };
    let entry = match found {
        Some(entry) if entry.client.is_enabled => entry,
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
    let client = &entry.client;
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
    let fail = |error: AuthorizeError, description: &str| {
        Ok(Err(error_response(
            &redirect_uri,
            error,
            description,
            state,
            iss,
        )))
    };

    if let Some(name) = params.repeated() {
        return fail(
            AuthorizeError::InvalidRequest,
            &format!("The `{name}` parameter was sent more than once."),
        );
    }
    // OIDC Core §6.1, §6.2: a request object or a reference to one would be signed parameters
    // that override these; until they are supported, refuse rather than answer the outer ones.
    if params.get("request").is_some() {
        return fail(
            AuthorizeError::RequestNotSupported,
            "Request objects (the `request` parameter) are not supported.",
        );
    }
    // RFC 9126 §2.1: a pushed request cannot itself point at another; a direct one with a
    // `request_uri` is taken by [`start`] before it gets here, so this one is not ours.
    if params.get("request_uri").is_some() {
        return fail(
            AuthorizeError::RequestUriNotSupported,
            "The `request_uri` parameter is not supported here.",
        );
    }
    if client.requires_par() && arrival == Arrival::Direct {
        return fail(
            AuthorizeError::InvalidRequest,
            "This application must push its authorization requests first (PAR, RFC 9126): POST them to /oauth/par and send the request_uri.",
        );
    }
    match params.get("response_type") {
        Some("code") => {}
        None => {
            return fail(
                AuthorizeError::InvalidRequest,
                "The response_type parameter is missing.",
            );
        }
        Some(_) => {
            return fail(
                AuthorizeError::UnsupportedResponseType,
                "Only response_type=code is supported.",
            );
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return fail(
            AuthorizeError::InvalidRequest,
            "Only response_mode=query is supported.",
        );
    }
    let scope = match Scopes::grant(params.get("scope"), &client.allowed_scopes()) {
        Ok(scope) => scope,
        Err(refusal) => return fail(AuthorizeError::InvalidScope, &refusal.describe()),
    };
    let challenge = params.get("code_challenge");
    match (challenge, params.get("code_challenge_method")) {
        (None, Some(_)) => {
            return fail(
                AuthorizeError::InvalidRequest,
                "code_challenge_method was sent without a code_challenge.",
            );
        }
        (Some(_), Some(method)) if method != pkce::S256 => {
            return fail(
                AuthorizeError::InvalidRequest,
                "Only the S256 code_challenge_method is supported.",
            );
        }
        // RFC 7636 §4.3: without a method the default is `plain`, which is refused.
        (Some(_), None) => {
            return fail(
                AuthorizeError::InvalidRequest,
                "code_challenge_method=S256 is required.",
            );
        }
        (Some(c), Some(_)) if !pkce::is_valid_challenge(c) => {
            return fail(
                AuthorizeError::InvalidRequest,
                "The code_challenge is not a valid S256 challenge.",
            );
        }
        (None, None) if !client.is_confidential || client.fapi2 => {
            return fail(
                AuthorizeError::InvalidRequest,
                "PKCE is required: send code_challenge and code_challenge_method=S256.",
            );
        }
        _ => {}
    }
    let prompt = match params.get("prompt").map(Prompts::parse) {
        None => Prompts::default(),
        Some(Ok(prompt)) => prompt,
        Some(Err(description)) => return fail(AuthorizeError::InvalidRequest, &description),
    };
    let max_age = match params.get("max_age").map(prompt::parse_max_age) {
        None => None,
        Some(Some(seconds)) => Some(seconds),
        Some(None) => {
            return fail(
                AuthorizeError::InvalidRequest,
                "max_age must be a non-negative whole number of seconds.",
            );
        }
    };
    if !client
        .allowed_grant_types()
        .contains(&GrantType::AuthorizationCode)
    {
        return fail(
            AuthorizeError::UnauthorizedClient,
            "This application may not use the authorization code grant.",
        );
    }
    let pending = Pending {
        id: crypto::random_token(16),
        client_id: client.client_id.clone(),
        client_name: client.name.clone(),
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
    Ok(Ok((entry, pending)))
}

/// Whether the person already granted this application every scope asked for.
pub fn already_granted(granted: Option<&Scopes>, pending: &Pending) -> bool {
    granted.is_some_and(|g| pending.scope.is_subset(g))
}

/// What a valid request needs next, decided from the request, the sign-in and the stored
/// consent alone ([`next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Sign in (again) and come back: nobody is signed in, or the sign-in is older than
    /// `prompt=login` or `max_age` allow. The request waits in the session meanwhile.
    SignIn,
    /// Ask on the consent page.
    Consent,
    /// Issue a code without a page: the person already agreed to every scope asked for.
    Issue,
    /// `prompt=none` and the person would have to see a page: this error goes back to the
    /// client instead (OIDC Core §3.1.2.6, `login_required` or `consent_required`).
    Refuse(AuthorizeError, &'static str),
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

/// Who the session says is signed in, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Person {
    pub user_id: UserId,
    pub signed_in: SignedIn,
    /// `signed_in` as stored with a code (OIDC Core §2 `auth_time`).
    auth_time: chrono::NaiveDateTime,
}

impl Person {
    /// `None` for a sign-in time that is not a date, which the session never holds.
    pub fn new(user_id: UserId, signed_in_at: i64) -> Option<Self> {
        let signed_in = SignedIn { at: signed_in_at };
        Some(Self {
            user_id,
            signed_in,
            auth_time: signed_in.auth_time()?,
        })
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

/// Decides what `pending` needs next (OIDC Core §3.1.2.1, §3.1.2.3, §3.1.2.4), given who is
/// signed in, what they agreed to before (`granted`), and the time now (seconds since the
/// epoch).
///
/// A sign-in at or after the request arrived is fresh: it satisfies `prompt=login` and any
/// `max_age`, so signing in again from the login page ends in a code rather than asking once
/// more (`max_age=0` is `prompt=login`, as §3.1.2.1 says).
pub fn next(
    pending: &Pending,
    signed_in: Option<SignedIn>,
    granted: Option<&Scopes>,
    now: i64,
) -> Next {
    let silent = pending.prompt.contains(Prompt::None);
    if needs_sign_in(pending, signed_in, now) {
        return if silent {
            Next::Refuse(
                AuthorizeError::LoginRequired,
                "The user must sign in, and prompt=none does not allow it.",
            )
        } else {
            Next::SignIn
        };
    }
    let must_ask =
        pending.prompt.contains(Prompt::Consent) || pending.prompt.contains(Prompt::SelectAccount);
    if already_granted(granted, pending) && !must_ask {
        Next::Issue
    } else if silent {
        Next::Refuse(
            AuthorizeError::ConsentRequired,
            "The user must consent, and prompt=none does not allow a consent page.",
        )
    } else {
        Next::Consent
    }
}

/// Where the authorization endpoint sends the person.
#[derive(Debug)]
pub enum Step {
    /// To the login page, and back to [`resume`]; `pending` waits in the session meanwhile.
    SignIn(Pending),
    /// The consent page; `pending` waits in the session for [`answer`].
    Consent(Pending, Box<ConsentView>),
    /// Back to the client: the request is over.
    Redirect(AuthorizationResponse),
    /// Our own error page: the request is over.
    Page(ErrorPage),
}

impl From<Refusal> for Step {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Page(page) => Self::Page(page),
            Refusal::Redirect(response) => Self::Redirect(response),
        }
    }
}

/// A [`Step`], and whether the session must be signed out first: it names an account that no
/// longer exists.
#[derive(Debug)]
pub struct Outcome {
    pub step: Step,
    pub sign_out: bool,
}

impl From<Step> for Outcome {
    fn from(step: Step) -> Self {
        Self {
            step,
            sign_out: false,
        }
    }
}

/// What the consent page shows: who asks, for what, and where the person goes next.
#[derive(Debug, Serialize)]
pub struct ConsentView {
    /// The signed-in person, for the page's header.
    #[serde(skip)]
    pub user: User,
    pub app: ConsentApp,
    /// Each scope asked for, in order, with its description from the catalogue.
    pub scopes: Vec<ConsentScope>,
    /// The person agreed to some scopes before: the page says what is new.
    pub reconsent: bool,
    /// The host the person is sent back to, so they can see where the answer goes.
    pub redirect_host: String,
    /// Echoed by the form: it can only answer the request it showed.
    pub request_id: String,
    /// The consent stored now, exactly as stored, echoed by the form as [`ConsentAnswer`]'s
    /// `granted` hint (none if there is no consent yet).
    pub granted: Option<String>,
}

/// The asking application, as the consent page introduces it.
#[derive(Debug, Serialize)]
pub struct ConsentApp {
    pub name: String,
    /// Up to two letters, for a logo placeholder.
    pub initials: String,
    pub logo_url: Option<String>,
    pub home_page_url: Option<String>,
    pub privacy_policy_url: Option<String>,
    /// A sandbox application: the page says so.
    pub sandbox: bool,
    /// The name of the account that registered it.
    pub owner: Option<String>,
}

/// One scope on the consent page.
#[derive(Debug, Serialize)]
pub struct ConsentScope {
    pub name: String,
    pub description: String,
    /// Asked for now but not agreed to before.
    pub new: bool,
}

impl ConsentView {
    fn new(
        user: User,
        owner: Option<User>,
        client: &Client,
        pending: &Pending,
        previous: Option<&Scopes>,
        catalogue: &[Scope],
        granted: Option<String>,
    ) -> Self {
        let agreed_before = previous.is_some_and(|p| !p.is_empty());
        let scopes = pending
            .scope
            .iter()
            .map(|s| ConsentScope {
                name: s.as_str().to_owned(),
                description: catalogue
                    .iter()
                    .find(|row| row.name == s.as_str())
                    .map_or_else(|| s.as_str().to_owned(), |row| row.description.clone()),
                new: agreed_before && !previous.is_some_and(|p| p.contains(s.as_str())),
            })
            .collect();
        let redirect_host = Url::parse(&pending.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| pending.redirect_uri.clone());
        Self {
            user,
            app: ConsentApp {
                name: client.name.clone(),
                initials: crate::domain::initials(&client.name),
                logo_url: client.logo_url.clone(),
                home_page_url: client.home_page_url.clone(),
                privacy_policy_url: client.privacy_policy_url.clone(),
                sandbox: !client.is_live,
                owner: owner.map(|o| o.name),
            },
            scopes,
            reconsent: agreed_before,
            redirect_host,
            request_id: pending.id.clone(),
            granted,
        }
    }
}

/// `GET /oauth/authorize`: checks a new request, then takes it as far as the session allows.
pub fn start(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    params: &Params,
    person: Option<Person>,
    now: i64,
) -> diesel::QueryResult<Outcome> {
    if let Some(request_uri) = params.get("request_uri") {
        return match super::par::take(conn, ctx, params.get("client_id"), request_uri)? {
            Ok(pending) => resume(conn, ctx, pending, person, now),
            Err(page) => Ok(Step::Page(page).into()),
        };
    }
    match validate(conn, &ctx.clients, params, &ctx.issuer, Arrival::Direct)? {
        Err(refusal) => Ok(Step::from(refusal).into()),
        Ok((entry, pending)) => proceed(conn, ctx, &entry.client, pending, person, now),
    }
}

/// Back from the login page with the request that waited in the session. The application may
/// have been disabled, or the redirect URI unregistered, meanwhile: then the request is over.
pub fn resume(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    pending: Pending,
    person: Option<Person>,
    now: i64,
) -> diesel::QueryResult<Outcome> {
    match current_client(conn, ctx, &pending)? {
        Some(entry) => proceed(conn, ctx, &entry.client, pending, person, now),
        None => Ok(Step::Page(unavailable()).into()),
    }
}

/// The application a waiting request is for, as [`resume`] would find it: signing in for the
/// request reads the person's consent to it in the account's own statement
/// ([`finish_at_sign_in`]).
pub fn waiting_client(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    pending: &Pending,
) -> diesel::QueryResult<Option<ClientRowId>> {
    Ok(current_client(conn, ctx, pending)?.map(|entry| entry.client.id))
}

/// Signing in for a waiting request, with the consent the sign-in read (`granted`): when that
/// consent covers the request and nothing else is asked ([`next`] says issue), the code is
/// issued at once and the sign-in answers with the redirect to the application, instead of
/// sending the browser back to [`resume`] to read the session and the consent again. `None`:
/// anything else (a consent page to show, an application changed meanwhile), which [`resume`]
/// then handles as always.
pub fn finish_at_sign_in(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    pending: &Pending,
    person: Person,
    granted: Option<&str>,
    now: i64,
) -> diesel::QueryResult<Option<Outcome>> {
    let Some(entry) = current_client(conn, ctx, pending)? else {
        return Ok(None);
    };
    let previous = granted.map(Scopes::from_stored);
    if next(pending, Some(person.signed_in), previous.as_ref(), now) != Next::Issue {
        return Ok(None);
    }
    let code = issue_code(
        conn,
        &entry.client,
        person,
        pending,
        super::fapi::code_ttl(&entry.client, ctx.code_ttl),
    )?;
    Ok(Some(
        respond(pending, Grant::Code(code), &ctx.issuer).into(),
    ))
}

/// What the consent form sent back.
#[derive(Debug, Clone, Copy)]
pub struct ConsentAnswer<'a> {
    pub request_id: &'a str,
    pub decision: &'a str,
    /// Never sent by our form: present only if someone tampered with it.
    pub client_id: Option<&'a str>,
    /// Never sent by our form either.
    pub scope: Option<&'a str>,
    /// The consent stored when the page was shown, as the page read it (absent if there was
    /// none): a hint that lets [`approve`] write the new consent in one statement. The write
    /// checks it, so a wrong one only costs the transaction the hint saves.
    pub granted: Option<&'a str>,
}

/// The consent page's answer to `pending`, which the caller has already taken out of the
/// session: one answer per request, whatever it is, so a tampered answer spends it too. The
/// application is checked again as [`resume`] checks it: it may have been disabled, or its
/// redirect URI unregistered, while the page was open.
pub fn answer(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    pending: &Pending,
    given: ConsentAnswer<'_>,
    person: Person,
) -> diesel::QueryResult<Step> {
    let tampered = given.request_id != pending.id
        || given.client_id.is_some_and(|c| c != pending.client_id)
        || given.scope.is_some_and(|s| s != pending.scope.to_stored());
    if tampered {
        return Ok(Step::Page(ErrorPage::new(
            "This request does not match",
            "The answer did not come from the page we showed. Go back to the application and start again.",
        )));
    }
    let Some(decision) = Decision::parse(given.decision) else {
        return Ok(Step::Page(ErrorPage::new(
            "No decision",
            "Choose Allow or Deny.",
        )));
    };
    let Some(entry) = current_client(conn, ctx, pending)? else {
        return Ok(Step::Page(unavailable()));
    };
    Ok(match decision {
        Decision::Allow => approve(conn, ctx, &entry.client, person, pending, given.granted)?,
        Decision::Deny => respond(
            pending,
            Grant::Error {
                error: AuthorizeError::AccessDenied,
                description: "The user denied the request.".into(),
            },
            &ctx.issuer,
        ),
    })
}

fn unavailable() -> ErrorPage {
    ErrorPage::new(
        "Application unavailable",
        "The application was disabled or changed meanwhile. Go back to it and start again.",
    )
}

/// The application `pending` was made for, if it is still enabled and still registers the
/// request's redirect URI (from the client cache, so as current as client authentication's
/// view: a change through this process at once, one made elsewhere within a second).
fn current_client(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    pending: &Pending,
) -> diesel::QueryResult<Option<Arc<CachedClient>>> {
    Ok(ctx
        .clients
        .client(conn, &pending.client_id, db::now())?
        .filter(|entry| {
            entry.client.is_enabled
                && entry
                    .client
                    .redirect_uris()
                    .contains_exact(&pending.redirect_uri)
        }))
}

/// A response to the request's verified redirect URI, with its `state`.
fn respond(pending: &Pending, grant: Grant, iss: &str) -> Step {
    match AuthorizationResponse::to(&pending.redirect_uri, grant, pending.state.as_deref(), iss) {
        Ok(response) => Step::Redirect(response),
        Err(page) => Step::Page(page),
    }
}

/// Takes a valid request as far as it can go: [`next`] decides, this loads what it needs and
/// carries it out.
fn proceed(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    client: &Client,
    pending: Pending,
    person: Option<Person>,
    now: i64,
) -> diesel::QueryResult<Outcome> {
    let Some(person) = person else {
        // Without anyone signed in, nothing but a sign-in (or prompt=none's refusal) follows.
        return Ok(nobody(pending, &ctx.issuer, now).into());
    };
    // One statement for what both the decision and the consent page need: the stored consent,
    // the person, and the application's owner ("made by").
    let (mut people, stored) = Consent::find_with_people(conn, person.user_id, client)?;
    let previous = stored.as_deref().map(Scopes::from_stored);
    let next = next(&pending, Some(person.signed_in), previous.as_ref(), now);
    // Remembered consent: a code at once, the consent unchanged. The account exists: the
    // consent comes back only with the person's own row.
    if next == Next::Issue {
        let code = issue_code(
            conn,
            client,
            person,
            &pending,
            super::fapi::code_ttl(client, ctx.code_ttl),
        )?;
        return Ok(respond(&pending, Grant::Code(code), &ctx.issuer).into());
    }
    let owner = people.iter().find(|u| u.id == client.user_id).cloned();
    let Some(user) = people
        .iter()
        .position(|u| u.id == person.user_id)
        .map(|at| people.swap_remove(at))
    else {
        // The account was deleted: sign the session out, and go on as for nobody.
        return Ok(Outcome {
            step: nobody(pending, &ctx.issuer, now),
            sign_out: true,
        });
    };
    Ok(match next {
        Next::SignIn => Step::SignIn(pending),
        Next::Refuse(error, description) => respond(
            &pending,
            Grant::Error {
                error,
                description: description.into(),
            },
            &ctx.issuer,
        ),
        // (Issue returned above; were it to come here, asking again is the safe answer.)
        Next::Consent | Next::Issue => {
            let view = ConsentView::new(
                user,
                owner,
                client,
                &pending,
                previous.as_ref(),
                &ctx.clients.scopes(conn)?,
                stored,
            );
            Step::Consent(pending, Box::new(view))
        }
    }
    .into())
}

/// The step for a request with nobody signed in.
fn nobody(pending: Pending, iss: &str, now: i64) -> Step {
    match next(&pending, None, None, now) {
        Next::Refuse(error, description) => respond(
            &pending,
            Grant::Error {
                error,
                description: description.into(),
            },
            iss,
        ),
        _ => Step::SignIn(pending),
    }
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

/// Records the consent (the union with what was granted before) and issues a code, in one
/// write transaction.
///
/// The consent grows to the union of what was agreed before and what is agreed now. What was
/// agreed before is the page's `granted` hint, and the write is conditional on the stored
/// consent still being exactly that (an UPDATE … WHERE scope = hint, or an INSERT when there was
/// none), so the common case is one statement; if the consent changed meanwhile (revoked, or
/// answered in another tab), the union is taken again in a transaction. The code is written
/// after the consent, on its own: a failure between the two leaves a consent the person gave
/// and no code, and the code grant re-reads the consent anyway.
fn approve(
    conn: &mut AnyConnection,
    ctx: &OAuthContext,
    client: &Client,
    person: Person,
    pending: &Pending,
    granted: Option<&str>,
) -> diesel::QueryResult<Step> {
    let now = db::now();
    // What was granted before keeps its times; what is granted now is stamped `now` (the
    // Authorized apps page says when each scope was granted).
    let union = |before: Option<&str>| -> Granted {
        Granted::from_stored(before.unwrap_or_default())
            .with(&pending.scope, now.and_utc().timestamp())
    };
    let scope = union(granted).to_stored();
    if !Consent::grant_if_unchanged(conn, person.user_id, client.id, granted, &scope, now)? {
        db::write_transaction(conn, |conn| {
            let previous = Consent::find(conn, person.user_id, client.id)?;
            let scope = union(previous.as_ref().map(|c| c.scope.as_str())).to_stored();
            Consent::grant(conn, person.user_id, client.id, &scope, now)
        })?;
    }
    let code = issue_code(
        conn,
        client,
        person,
        pending,
        super::fapi::code_ttl(client, ctx.code_ttl),
    )?;
    Ok(respond(pending, Grant::Code(code), &ctx.issuer))
}

/// Issues a code (§4.1.2): 256 random bits, stored as a digest, bound to the client, redirect
/// URI, user, scope, nonce and PKCE challenge, and to when the person entered their password
/// (the id_token's `auth_time`, OIDC Core §2: required when the request had `max_age`; we
/// always send it). Returns the code in clear, for the redirect.
fn issue_code(
    conn: &mut AnyConnection,
    client: &Client,
    person: Person,
    pending: &Pending,
    code_ttl: std::time::Duration,
) -> diesel::QueryResult<String> {
    let now = db::now();
    let code = crypto::random_token(32);
    AuthorizationCode::insert(
        conn,
        &NewAuthorizationCode {
            client_id: client.id,
            user_id: person.user_id,
            code: &crypto::token_digest(&code),
            scope: &pending.scope.to_stored(),
            redirect_uri: &pending.redirect_uri,
            code_challenge: pending.code_challenge.as_deref(),
            code_challenge_method: pending.code_challenge.as_ref().map(|_| pkce::S256),
            nonce: pending.nonce.as_deref(),
            expired_at: now
                + chrono::TimeDelta::seconds(i64::try_from(code_ttl.as_secs()).unwrap_or(600)),
            created_at: now,
            auth_time: Some(person.auth_time),
            redirect_uri_given: pending.redirect_uri_given,
        },
    )?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(prompt: &str, max_age: Option<u64>) -> Pending {
        Pending {
            id: "r".into(),
            client_id: "1".into(),
            client_name: "Shop".into(),
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

    fn error_of(step: &Next) -> Option<String> {
        match step {
            Next::Refuse(error, _) => Some(error.code().to_owned()),
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

    fn decide_case(c: &Case) -> Next {
        let granted = Scopes::parse("get_user_profile").unwrap();
        let now = 1_010;
        next(
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
            (case("nobody signed in", "", None, None, true), Next::SignIn),
            (case("remembered consent", "", None, old, true), Next::Issue),
            (case("no consent yet", "", None, old, false), Next::Consent),
            (
                case("prompt=login, old", "login", None, old, true),
                Next::SignIn,
            ),
            (
                case("prompt=login, fresh", "login", None, fresh, true),
                Next::Issue,
            ),
            (case("max_age=0, old", "", Some(0), old, true), Next::SignIn),
            (
                case("max_age=0, fresh", "", Some(0), fresh, true),
                Next::Issue,
            ),
            (
                case("max_age=60, 110 s old", "", Some(60), old, true),
                Next::SignIn,
            ),
            (
                case("max_age=600, 110 s old", "", Some(600), old, true),
                Next::Issue,
            ),
            (
                case("prompt=consent", "consent", None, old, true),
                Next::Consent,
            ),
            (
                case("select_account", "select_account", None, old, true),
                Next::Consent,
            ),
            (
                case("prompt=none, agreed", "none", None, old, true),
                Next::Issue,
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

//! `/oauth/authorize`: the HTTP side of `oauth::authorize`. Each handler reads the request and
//! the session, calls the protocol function (`start`, `resume`, `answer`), and turns the step it
//! returns into a redirect, the login page, the consent page or our error page.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::page::{CsrfForm, CsrfOnly, CsrfProtected, render, see_other};
use crate::auth::session::{PENDING_AUTHORIZATION, TypedSession};
use crate::db::{self, DbError};
use crate::error::AppError;
use crate::oauth::authorize::{
    self, AuthorizationResponse, ConsentAnswer, ConsentView, ErrorPage, Outcome, Pending, Person,
    Step,
};
use crate::state::AppState;

pub const RESUME: &str = "/oauth/authorize/resume";

/// The authorization response, as a `303 See Other` to the client's redirect URI.
fn redirect(response: &AuthorizationResponse) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, response.url().as_str()))
        .finish()
}

/// Our own error page: for requests we must not redirect.
fn error_page(
    state: &AppState,
    session: &TypedSession,
    page: &ErrorPage,
) -> Result<HttpResponse, AppError> {
    let mut ctx = tera::Context::new();
    ctx.insert("title", page.title);
    ctx.insert("message", &page.message);
    render(
        state,
        session,
        None,
        "oauth/error.html",
        ctx,
        StatusCode::BAD_REQUEST,
    )
}

fn expired() -> ErrorPage {
    ErrorPage {
        title: "This request has expired",
        message: "Go back to the application and start again.".into(),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `GET /oauth/authorize`.
pub async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
) -> Result<HttpResponse, AppError> {
    let params = authorize::read_query(req.query_string());
    let (ctx, person) = (state.oauth.clone(), person(&session));
    let outcome = db::run(&state.pool, move |conn| {
        authorize::start(conn, &ctx, &params, person, now()).map_err(DbError::from)
    })
    .await?;
    show(&state, &session, outcome, Stored::No)
}

/// The cookie that carries an authorization request waiting for the person to sign in and
/// decide, sealed with the server key (XChaCha20-Poly1305), so it can be neither read nor
/// forged. It is not kept in the session: a signed-in session lives in its table row, and
/// every change to the request (stored on the way to the login page, dropped once answered)
/// was a write of that row, two per flow. A request too big for a cookie goes in the session as
/// before; [`waiting`] looks in both.
const PENDING_COOKIE: &str = "latchkey_authorization";
/// Authenticated with the sealed request, so a sealed value from elsewhere does not open here.
const PENDING_CONTEXT: &str = "pending authorization request";
/// The largest sealed request carried in the cookie: a browser keeps 4,096 bytes per cookie,
/// name and attributes included.
const MAX_PENDING_COOKIE: usize = 3800;

/// The authorization request waiting for this browser, if any: from its cookie, or from the
/// session for one too big for a cookie. One older than the session's idle timeout is gone.
pub fn waiting(req: &HttpRequest, state: &AppState, session: &TypedSession) -> Option<Pending> {
    let sealed = req.cookie(PENDING_COOKIE);
    let from_cookie = sealed.and_then(|cookie| {
        let json = state
            .server_key
            .decrypt(cookie.value(), PENDING_CONTEXT)
            .ok()?;
        let pending: Pending = serde_json::from_slice(&json).ok()?;
        let fresh = now() - pending.created_at <= crate::startup::SESSION_IDLE.whole_seconds();
        fresh.then_some(pending)
    });
    from_cookie.or_else(|| session.get::<Pending>(PENDING_AUTHORIZATION))
}

fn pending_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build(PENDING_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.issuer.starts_with("https://"))
        .finish()
}

/// What a step does with the waiting request's cookie.
enum Carry {
    Nothing,
    Set(Cookie<'static>),
    Remove,
}

impl Carry {
    fn onto(self, state: &AppState, mut response: HttpResponse) -> HttpResponse {
        match self {
            Carry::Nothing => {}
            Carry::Set(cookie) => {
                // Only fails for a header value that is not one, which base64url never is.
                let _ = response.add_cookie(&cookie);
            }
            Carry::Remove => {
                let _ = response.add_removal_cookie(&pending_cookie(state, String::new()));
            }
        }
        response
    }
}

/// `GET /oauth/authorize/resume`: back from the login page.
pub async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
) -> Result<HttpResponse, AppError> {
    let Some(pending) = waiting(&req, &state, &session) else {
        return error_page(&state, &session, &expired());
    };
    let (ctx, person) = (state.oauth.clone(), person(&session));
    let outcome = db::run(&state.pool, move |conn| {
        authorize::resume(conn, &ctx, pending, person, now()).map_err(DbError::from)
    })
    .await?;
    show(&state, &session, outcome, Stored::Yes)
}

/// The answer of a sign-in that finished the waiting request itself
/// (`oauth::authorize::finish_at_sign_in`): the redirect to the application, the request gone.
pub fn answer_at_sign_in(
    state: &AppState,
    session: &TypedSession,
    outcome: Outcome,
) -> Result<HttpResponse, AppError> {
    show(state, session, outcome, Stored::Yes)
}

/// Whether the request is already waiting in the session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stored {
    Yes,
    No,
}

/// Whether the signed-in person must enter the password again for the authorization request
/// waiting (`prompt=login`, `max_age`): the login page then shows its form.
pub fn wants_fresh_sign_in(session: &TypedSession, pending: Option<&Pending>) -> bool {
    pending.is_some_and(|pending| {
        authorize::needs_sign_in(pending, person(session).map(|p| p.signed_in), now())
    })
}

/// The signed-in person, with when they entered their password.
fn person(session: &TypedSession) -> Option<Person> {
    Person::new(session.user_id()?, session.signed_in_at()?)
}

/// Turns a step into HTTP. A request that goes on (to the login page or the consent page) waits
/// in its cookie; one that waited and is over leaves it. (A new request that ends at once
/// leaves alone whatever another tab's request left waiting.)
fn show(
    state: &AppState,
    session: &TypedSession,
    outcome: Outcome,
    stored: Stored,
) -> Result<HttpResponse, AppError> {
    if outcome.sign_out {
        session.log_out();
    }
    let stored = if outcome.sign_out { Stored::No } else { stored };
    match outcome.step {
        // Signed in too long ago for prompt=login or max_age, the session stays (a link must
        // not be able to sign anyone out): the login page sees the waiting request and asks
        // for the password instead of passing the session on (`wants_fresh_sign_in`).
        Step::SignIn(pending) => {
            let carry = keep(state, session, &pending, stored)?;
            Ok(carry.onto(state, to_login()))
        }
        Step::Consent(pending, view) => {
            let carry = keep(state, session, &pending, stored)?;
            Ok(carry.onto(state, consent_page(state, session, *view)?))
        }
        Step::Redirect(response) => {
            let carry = forget(session, stored);
            Ok(carry.onto(state, redirect(&response)))
        }
        Step::Page(page) => {
            let carry = forget(session, stored);
            Ok(carry.onto(state, error_page(state, session, &page)?))
        }
    }
}

fn forget(session: &TypedSession, stored: Stored) -> Carry {
    if stored == Stored::No {
        return Carry::Nothing;
    }
    session.remove(PENDING_AUTHORIZATION);
    Carry::Remove
}

fn to_login() -> HttpResponse {
    see_other(&format!("/login?next={}", urlencode(RESUME)))
}

/// Stores the request, if it is not stored yet, for the page that follows: in its cookie, or
/// in the session if it is too big for one. The CSRF token goes into the session with it, so
/// the login page reads the session without writing it again.
fn keep(
    state: &AppState,
    session: &TypedSession,
    pending: &Pending,
    stored: Stored,
) -> Result<Carry, AppError> {
    if stored == Stored::Yes {
        return Ok(Carry::Nothing);
    }
    session.csrf_token();
    let json = serde_json::to_vec(pending).map_err(|e| AppError::Internal(e.to_string()))?;
    let sealed = state.server_key.encrypt(&json, PENDING_CONTEXT);
    if sealed.len() <= MAX_PENDING_COOKIE {
        // A request left in the session by an older one would otherwise outlive this one.
        session.remove(PENDING_AUTHORIZATION);
        return Ok(Carry::Set(pending_cookie(state, sealed)));
    }
    session.put(PENDING_AUTHORIZATION, pending)?;
    Ok(Carry::Remove)
}

/// The consent page.
fn consent_page(
    state: &AppState,
    session: &TypedSession,
    view: ConsentView,
) -> Result<HttpResponse, AppError> {
    let mut ctx = tera::Context::new();
    ctx.insert("app", &view.app);
    ctx.insert("scopes", &view.scopes);
    ctx.insert("reconsent", &view.reconsent);
    ctx.insert("redirect_host", &view.redirect_host);
    ctx.insert("request_id", &view.request_id);
    ctx.insert("granted", &view.granted);
    render(
        state,
        session,
        Some(&view.user),
        "oauth/consent.html",
        ctx,
        StatusCode::OK,
    )
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[derive(Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    decision: String,
    /// Never sent by our form: present only if someone tampered with it.
    client_id: Option<String>,
    scope: Option<String>,
    granted: Option<String>,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for ConsentForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /oauth/authorize`: the decision, bound to the request stored in the session.
pub async fn decide(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CsrfForm(form): CsrfForm<ConsentForm>,
) -> Result<HttpResponse, AppError> {
    let Some(person) = person(&session) else {
        return Ok(to_login());
    };
    let Some(pending) = waiting(&req, &state, &session) else {
        return error_page(&state, &session, &expired());
    };
    // One answer per request, whatever it is: a tampered answer spends the request too (`show`
    // drops it with whatever step the answer is).
    let ctx = state.oauth.clone();
    let step = db::run(&state.pool, move |conn| {
        let given = ConsentAnswer {
            request_id: &form.request_id,
            decision: &form.decision,
            client_id: form.client_id.as_deref(),
            scope: form.scope.as_deref(),
            granted: form.granted.as_deref(),
        };
        authorize::answer(conn, &ctx, &pending, given, person).map_err(DbError::from)
    })
    .await?;
    show(&state, &session, step.into(), Stored::Yes)
}

/// `POST /oauth/authorize/switch`: "Not you?" — sign out, keep the request, sign in again.
pub async fn switch(
    session: TypedSession,
    _form: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse, AppError> {
    session.switch_account()?;
    Ok(see_other(&format!("/login?next={}", urlencode(RESUME))))
}

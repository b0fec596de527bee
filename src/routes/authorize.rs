//! `/oauth/authorize`: the HTTP side of `oauth::authorize`. Each handler reads the request and
//! the session, calls the protocol function (`start`, `resume`, `answer`), and turns the step it
//! returns into a redirect, the login page, the consent page or our error page.

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

/// `GET /oauth/authorize/resume`: back from the login page.
pub async fn resume(
    state: web::Data<AppState>,
    session: TypedSession,
) -> Result<HttpResponse, AppError> {
    let Some(pending) = session.get::<Pending>(PENDING_AUTHORIZATION) else {
        return error_page(&state, &session, &expired());
    };
    let (ctx, person) = (state.oauth.clone(), person(&session));
    let outcome = db::run(&state.pool, move |conn| {
        authorize::resume(conn, &ctx, pending, person, now()).map_err(DbError::from)
    })
    .await?;
    show(&state, &session, outcome, Stored::Yes)
}

/// Whether the request is already waiting in the session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stored {
    Yes,
    No,
}

/// Whether the signed-in person must enter the password again for the authorization request
/// waiting in the session (`prompt=login`, `max_age`): the login page then shows its form.
pub fn wants_fresh_sign_in(session: &TypedSession) -> bool {
    session
        .get::<Pending>(PENDING_AUTHORIZATION)
        .is_some_and(|pending| {
            authorize::needs_sign_in(&pending, person(session).map(|p| p.signed_in), now())
        })
}

/// The signed-in person, with when they entered their password.
fn person(session: &TypedSession) -> Option<Person> {
    Person::new(session.user_id()?, session.signed_in_at()?)
}

/// Turns a step into HTTP. A request that goes on (to the login page or the consent page) waits
/// in the session; one that waited there and is over leaves it. (A new request that ends at
/// once leaves alone whatever another tab's request left waiting.)
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
            keep(session, &pending, stored)?;
            Ok(to_login())
        }
        Step::Consent(pending, view) => {
            keep(session, &pending, stored)?;
            consent_page(state, session, *view)
        }
        Step::Redirect(response) => {
            forget(session, stored);
            Ok(redirect(&response))
        }
        Step::Page(page) => {
            forget(session, stored);
            error_page(state, session, &page)
        }
    }
}

fn forget(session: &TypedSession, stored: Stored) {
    if stored == Stored::Yes {
        session.remove(PENDING_AUTHORIZATION);
    }
}

fn to_login() -> HttpResponse {
    see_other(&format!("/login?next={}", urlencode(RESUME)))
}

/// Stores the request in the session, if it is not there yet, for the page that follows. The
/// CSRF token goes in with it, so the login page reads the session without writing it again.
fn keep(session: &TypedSession, pending: &Pending, stored: Stored) -> Result<(), AppError> {
    if stored == Stored::No {
        session.csrf_token();
        session.put(PENDING_AUTHORIZATION, pending)?;
    }
    Ok(())
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
    state: web::Data<AppState>,
    session: TypedSession,
    CsrfForm(form): CsrfForm<ConsentForm>,
) -> Result<HttpResponse, AppError> {
    let Some(person) = person(&session) else {
        return Ok(to_login());
    };
    let Some(pending) = session.get::<Pending>(PENDING_AUTHORIZATION) else {
        return error_page(&state, &session, &expired());
    };
    // One answer per request, whatever it is: a tampered answer spends the request too.
    session.remove(PENDING_AUTHORIZATION);
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

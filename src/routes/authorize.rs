//! `/oauth/authorize`: check the request, have the person sign in, show the consent page, and
//! send them back to the application with a code (or `access_denied`). What each request needs
//! next (`prompt`, `max_age`, remembered consent) is decided in `oauth::authorize`.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::page::{CsrfForm, CsrfOnly, CsrfProtected, render, see_other};
use crate::auth::session::{PENDING_AUTHORIZATION, TypedSession};
use crate::db::models::{Client, Consent, Scope, User};
use crate::db::{self, DbError};
use crate::domain::Scopes;
use crate::error::AppError;
use crate::oauth::authorize::{self, Decision, Pending, Refusal, SignedIn, Step};
use crate::state::AppState;

const RESUME: &str = "/oauth/authorize/resume";

/// An authorization response (a code or an error) back to the application. Each carries `iss`
/// (RFC 9207 §2), so a client that talks to several servers can tell which one answered and
/// refuse a response from the wrong one (the mix-up attack, RFC 9700 §4.4).
fn redirect(state: &AppState, url: &url::Url) -> HttpResponse {
    let mut url = url.clone();
    url.query_pairs_mut()
        .append_pair("iss", &state.oauth.issuer);
    HttpResponse::SeeOther()
        .insert_header((LOCATION, url.as_str()))
        .finish()
}

/// Our own error page: for requests we must not redirect.
fn error_page(
    state: &AppState,
    session: &TypedSession,
    title: &str,
    message: &str,
) -> Result<HttpResponse, AppError> {
    let mut ctx = tera::Context::new();
    ctx.insert("title", title);
    ctx.insert("message", message);
    render(
        state,
        session,
        None,
        "oauth/error.html",
        ctx,
        StatusCode::BAD_REQUEST,
    )
}

/// `GET /oauth/authorize`.
pub async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
) -> Result<HttpResponse, AppError> {
    let params = authorize::read_query(req.query_string());
    let outcome = db::run(&state.pool, move |conn| {
        authorize::validate(conn, &params).map_err(DbError::from)
    })
    .await?;
    match outcome {
        Err(Refusal::Page { title, message }) => error_page(&state, &session, title, &message),
        Err(Refusal::Redirect(url)) => Ok(redirect(&state, &url)),
        Ok((client, pending)) => proceed(&state, &session, client, pending, Stored::No).await,
    }
}

/// `GET /oauth/authorize/resume`: back from the login page.
pub async fn resume(
    state: web::Data<AppState>,
    session: TypedSession,
) -> Result<HttpResponse, AppError> {
    let Some(pending) = session.get::<Pending>(PENDING_AUTHORIZATION) else {
        return error_page(
            &state,
            &session,
            "This request has expired",
            "Go back to the application and start again.",
        );
    };
    let client_id = pending.client_id.clone();
    let client = db::run(&state.pool, move |conn| {
        Client::find_by_client_id(conn, &client_id).map_err(DbError::from)
    })
    .await?;
    match client {
        Some(client)
            if client.is_enabled
                && client.redirect_uris().contains_exact(&pending.redirect_uri) =>
        {
            proceed(&state, &session, client, pending, Stored::Yes).await
        }
        _ => error_page(
            &state,
            &session,
            "Application unavailable",
            "The application was disabled or changed meanwhile. Go back to it and start again.",
        ),
    }
}

/// Whether the request is already waiting in the session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stored {
    Yes,
    No,
}

/// The signed-in person, with when they entered their password.
/// Whether the signed-in person must enter the password again for the authorization request
/// waiting in the session (`prompt=login`, `max_age`): the login page then shows its form.
pub fn wants_fresh_sign_in(session: &TypedSession) -> bool {
    session
        .get::<Pending>(PENDING_AUTHORIZATION)
        .is_some_and(|pending| {
            authorize::needs_sign_in(
                &pending,
                signed_in(session).map(|(_, signed)| signed),
                chrono::Utc::now().timestamp(),
            )
        })
}

fn signed_in(session: &TypedSession) -> Option<(i64, SignedIn)> {
    let user_id = session.user_id()?;
    let at = session.signed_in_at()?;
    Some((user_id, SignedIn { at }))
}

/// A step, with what the database added to it.
enum Decided {
    SignIn,
    /// The account no longer exists.
    Gone,
    /// A code, under consent already given.
    Issued(url::Url),
    Refused(Refusal),
    /// The consent page.
    Ask(Box<ConsentView>),
}

/// What the consent page shows besides the request and the application.
struct ConsentView {
    /// The signed-in person.
    user: User,
    /// The application's maker.
    owner: Option<User>,
    /// What the person agreed to before, if anything.
    previous: Option<Scopes>,
    /// The scope catalogue, for descriptions.
    scopes: Vec<Scope>,
}

/// Asks `oauth::authorize::decide` what the request needs (a sign-in, the consent page, or
/// nothing more), and does it.
async fn proceed(
    state: &AppState,
    session: &TypedSession,
    client: Client,
    pending: Pending,
    stored: Stored,
) -> Result<HttpResponse, AppError> {
    let now = chrono::Utc::now().timestamp();
    let person =
        signed_in(session).and_then(|(id, signed)| Some((id, signed, signed.auth_time()?)));
    let decided = match person {
        // Without anyone signed in, nothing but a sign-in (or prompt=none's refusal) follows.
        None => match authorize::decide(&pending, None, None, now) {
            Step::Refuse(refusal) => Decided::Refused(refusal),
            _ => Decided::SignIn,
        },
        Some((user_id, signed, auth_time)) => {
            let ttl = state.oauth.code_ttl;
            let (client, pending) = (client.clone(), pending.clone());
            db::run(&state.pool, move |conn| {
                let mut people = User::find_many(conn, &[user_id, client.user_id])?;
                let owner = people.iter().find(|u| u.id == client.user_id).cloned();
                let Some(user) = people
                    .iter()
                    .position(|u| u.id == user_id)
                    .map(|at| people.swap_remove(at))
                else {
                    return Ok::<_, DbError>(Decided::Gone);
                };
                let previous =
                    Consent::find(conn, user_id, client.id)?.map(|c| Scopes::from_stored(&c.scope));
                Ok(
                    match authorize::decide(&pending, Some(signed), previous.as_ref(), now) {
                        Step::SignIn => Decided::SignIn,
                        Step::Refuse(refusal) => Decided::Refused(refusal),
                        // Remembered consent: a code at once, the consent unchanged.
                        Step::Issue => Decided::Issued(authorize::issue_code(
                            conn, &client, user_id, &pending, ttl, auth_time,
                        )?),
                        Step::Consent => Decided::Ask(Box::new(ConsentView {
                            user,
                            owner,
                            previous,
                            scopes: Scope::all(conn)?,
                        })),
                    },
                )
            })
            .await?
        }
    };
    match decided {
        Decided::SignIn => {
            // Signed in too long ago for prompt=login or max_age, the session stays (a link must
            // not be able to sign anyone out): the login page sees the waiting request and asks
            // for the password instead of passing the session on (`wants_fresh_sign_in`).
            keep(session, &pending, stored)?;
            Ok(see_other(&format!("/login?next={}", urlencode(RESUME))))
        }
        Decided::Gone => {
            session.log_out();
            match authorize::decide(&pending, None, None, now) {
                Step::Refuse(Refusal::Redirect(url)) => Ok(redirect(state, &url)),
                _ => Ok(see_other(&format!("/login?next={}", urlencode(RESUME)))),
            }
        }
        Decided::Issued(url) | Decided::Refused(Refusal::Redirect(url)) => {
            session.remove(PENDING_AUTHORIZATION);
            Ok(redirect(state, &url))
        }
        Decided::Refused(Refusal::Page { title, message }) => {
            session.remove(PENDING_AUTHORIZATION);
            error_page(state, session, title, &message)
        }
        Decided::Ask(view) => {
            keep(session, &pending, stored)?;
            consent_page(state, session, &client, &pending, *view)
        }
    }
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

/// The consent page: who asks, for what, and where the person goes next.
fn consent_page(
    state: &AppState,
    session: &TypedSession,
    client: &Client,
    pending: &Pending,
    view: ConsentView,
) -> Result<HttpResponse, AppError> {
    let ConsentView {
        user,
        owner,
        previous,
        scopes,
    } = view;
    let previous: BTreeSet<String> = previous
        .map(|p| p.iter().map(|s| s.as_str().to_owned()).collect())
        .unwrap_or_default();
    let asked = &pending.scope;
    let scope_rows: Vec<_> = asked
        .iter()
        .map(|s| {
            let description = scopes.iter().find(|r| r.name == s.as_str()).map(|r| r.description.clone()).unwrap_or_else(|| s.as_str().to_owned());
            json!({ "name": s.as_str(), "description": description, "new": !previous.is_empty() && !previous.contains(s.as_str()) })
        })
        .collect();
    let host = url::Url::parse(&pending.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| pending.redirect_uri.clone());
    let mut ctx = tera::Context::new();
    ctx.insert(
        "app",
        &json!({
            "name": client.name,
            "initials": super::portal::initials(&client.name),
            "logo_url": client.logo_url,
            "home_page_url": client.home_page_url,
            "privacy_policy_url": client.privacy_policy_url,
            "sandbox": !client.is_live,
            "owner": owner.map(|o| o.name),
        }),
    );
    ctx.insert("scopes", &scope_rows);
    ctx.insert("reconsent", &!previous.is_empty());
    ctx.insert("redirect_host", &host);
    ctx.insert("request_id", &pending.id);
    render(
        state,
        session,
        Some(&user),
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
    let Some((user_id, auth_time)) =
        signed_in(&session).and_then(|(id, signed)| Some((id, signed.auth_time()?)))
    else {
        return Ok(see_other(&format!("/login?next={}", urlencode(RESUME))));
    };
    let Some(pending) = session.get::<Pending>(PENDING_AUTHORIZATION) else {
        return error_page(
            &state,
            &session,
            "This request has expired",
            "Go back to the application and start again.",
        );
    };
    // One answer per request, whatever it is: a tampered answer spends the request too.
    session.remove(PENDING_AUTHORIZATION);
    let tampered = form.request_id != pending.id
        || form
            .client_id
            .as_ref()
            .is_some_and(|c| *c != pending.client_id)
        || form
            .scope
            .as_ref()
            .is_some_and(|s| *s != pending.scope.to_stored());
    if tampered {
        return error_page(
            &state,
            &session,
            "This request does not match",
            "The answer did not come from the page we showed. Go back to the application and start again.",
        );
    }
    match Decision::parse(&form.decision) {
        Some(Decision::Allow) => {
            let ttl = state.oauth.code_ttl;
            let url = db::run(&state.pool, move |conn| {
                let client =
                    Client::find_by_client_id(conn, &pending.client_id)?.filter(|c| c.is_enabled);
                match client {
                    Some(client) => {
                        authorize::approve(conn, &client, user_id, &pending, ttl, auth_time)
                            .map(Some)
                            .map_err(DbError::from)
                    }
                    None => Ok(None),
                }
            })
            .await?;
            match url {
                Some(url) => Ok(redirect(&state, &url)),
                None => error_page(
                    &state,
                    &session,
                    "Application unavailable",
                    "The application was disabled meanwhile.",
                ),
            }
        }
        Some(Decision::Deny) => match authorize::deny(&pending) {
            Some(url) => Ok(redirect(&state, &url)),
            None => error_page(
                &state,
                &session,
                "Invalid redirect URI",
                "The application's redirect URI cannot be used.",
            ),
        },
        None => error_page(&state, &session, "No decision", "Choose Allow or Deny."),
    }
}

/// `POST /oauth/authorize/switch`: "Not you?" — sign out, keep the request, sign in again.
pub async fn switch(
    session: TypedSession,
    _form: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse, AppError> {
    session.switch_account()?;
    Ok(see_other(&format!("/login?next={}", urlencode(RESUME))))
}

//! `/oauth/authorize`: check the request, have the person sign in, show the consent page, and
//! send them back to the application with a code (or `access_denied`).

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::page::{CsrfForm, CsrfOnly, CsrfProtected, render, see_other};
use crate::auth::session::{PENDING_AUTHORIZATION, TypedSession};
use crate::db::models::{Client, Scope, User};
use crate::db::{self, DbError};
use crate::domain::Scopes;
use crate::error::AppError;
use crate::oauth::authorize::{self, Params, Pending, Refusal};
use crate::startup::AppState;

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
    let params = Params::from_query(req.query_string());
    let outcome = db::run(&state.pool, move |conn| {
        authorize::validate(conn, &params).map_err(DbError::from)
    })
    .await?;
    match outcome {
        Err(Refusal::Page { title, message }) => error_page(&state, &session, title, &message),
        Err(Refusal::Redirect(url)) => Ok(redirect(&state, &url)),
        Ok((client, pending)) => {
            // The CSRF token goes into the session with the request, so the login page that
            // follows reads the session without writing it again.
            session.csrf_token();
            session.put(PENDING_AUTHORIZATION, &pending)?;
            proceed(&state, &session, client, pending).await
        }
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
            proceed(&state, &session, client, pending).await
        }
        _ => error_page(
            &state,
            &session,
            "Application unavailable",
            "The application was disabled or changed meanwhile. Go back to it and start again.",
        ),
    }
}

/// Signed in? Already agreed? Then a code at once; otherwise the consent page.
async fn proceed(
    state: &AppState,
    session: &TypedSession,
    client: Client,
    pending: Pending,
) -> Result<HttpResponse, AppError> {
    let Some(user_id) = session.user_id() else {
        return Ok(see_other(&format!("/login?next={}", urlencode(RESUME))));
    };
    let ttl = state.oauth.code_ttl;
    let auth_time = session
        .signed_in_at()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.naive_utc());
    let (lookup_client, lookup_pending) = (client.clone(), pending.clone());
    let decided = db::run(&state.pool, move |conn| {
        let mut people = User::find_many(conn, &[user_id, lookup_client.user_id])?;
        let owner = people
            .iter()
            .find(|u| u.id == lookup_client.user_id)
            .cloned();
        let user = people
            .iter()
            .position(|u| u.id == user_id)
            .map(|at| people.swap_remove(at));
        let previous = crate::db::models::Consent::find(conn, user_id, lookup_client.id)?
            .map(|c| Scopes::from_stored(&c.scope));
        // Remembered consent (and a signed-in user): a code at once, the consent unchanged.
        if user.is_some() && authorize::already_granted(previous.as_ref(), &lookup_pending) {
            let url = authorize::issue_code(
                conn,
                &lookup_client,
                user_id,
                &lookup_pending,
                ttl,
                auth_time,
            )?;
            return Ok::<_, DbError>((user, owner, Some(url), previous, Vec::new()));
        }
        let scopes = Scope::all(conn)?;
        Ok((user, owner, None, previous, scopes))
    })
    .await?;
    let (Some(user), owner, url, previous, scopes) = decided else {
        session.log_out();
        return Ok(see_other(&format!("/login?next={}", urlencode(RESUME))));
    };
    if let Some(url) = url {
        session.remove(PENDING_AUTHORIZATION);
        return Ok(redirect(state, &url));
    }
    let previous: BTreeSet<String> = previous
        .map(|p| p.iter().map(|s| s.as_str().to_owned()).collect())
        .unwrap_or_default();
    let asked = Scopes::from_stored(&pending.scope);
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
    let Some(user_id) = session.user_id() else {
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
        || form.scope.as_ref().is_some_and(|s| *s != pending.scope);
    if tampered {
        return error_page(
            &state,
            &session,
            "This request does not match",
            "The answer did not come from the page we showed. Go back to the application and start again.",
        );
    }
    match form.decision.as_str() {
        "allow" => {
            let ttl = state.oauth.code_ttl;
            let auth_time = session
                .signed_in_at()
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| t.naive_utc());
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
        "deny" => match authorize::deny(&pending) {
            Some(url) => Ok(redirect(&state, &url)),
            None => error_page(
                &state,
                &session,
                "Invalid redirect URI",
                "The application's redirect URI cannot be used.",
            ),
        },
        _ => error_page(&state, &session, "No decision", "Choose Allow or Deny."),
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

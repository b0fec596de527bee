//! What every server-rendered page shares: rendering with the common context (signed-in user,
//! CSRF token, flash message), the signed-in-user extractor, and CSRF-checked forms.

use std::future::Future;
use std::pin::Pin;

use actix_session::SessionExt as _;
use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::auth::session::TypedSession;
use crate::db::models::User;
use crate::db::{self, DbError};
use crate::error::AppError;
use crate::state::AppState;

/// Renders `template` with the common context, with `status` (200, or 422 for a form that
/// comes back with errors).
pub fn render(
    state: &AppState,
    session: &TypedSession,
    user: Option<&User>,
    template: &str,
    mut ctx: tera::Context,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    ctx.insert("csrf_token", &session.csrf_token());
    ctx.insert("flash", &session.take_flash());
    if let Some(user) = user {
        ctx.insert(
            "current_user",
            &json!({
                "id": user.id,
                "username": user.username,
                "name": user.name,
                "email": user.email,
                "email_verified": user.email.is_none() || user.email_verified_at.is_some(),
                // The portal's chrome (its navigation, the merchant banner) for those who
                // build applications, and on its own pages.
                "developer": user.is_developer || template.starts_with("portal/"),
            }),
        );
    }
    let html = state.templates.render(template, &ctx)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// `message.html`: a page that only tells something (a dead link, a request gone stale), with
/// `status`, and the sign-in page as the way on.
pub fn message(
    state: &AppState,
    session: &TypedSession,
    title: &str,
    message: &str,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let mut ctx = tera::Context::new();
    ctx.insert("title", title);
    ctx.insert("message", message);
    render(state, session, None, "message.html", ctx, status)
}

/// `303 See Other` to a local path: the answer to every successful form POST.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location))
        .finish()
}

/// A `next=` target is honoured only if it is a path on this site: `/x`, never `//host` or
/// `/\host` (which browsers treat as another site), and never a full URL.
pub fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?.trim();
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    local.then(|| next.to_owned())
}

/// The signed-in user. Pages that need one take this; without a session the visitor is sent to
/// the login page, which brings them back afterwards.
pub struct CurrentUser(pub User);

impl FromRequest for CurrentUser {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        let session = TypedSession::from_session(req.get_session());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let target = match req.uri().path_and_query() {
            Some(pq) => pq.as_str().to_owned(),
            None => req.path().to_owned(),
        };
        Box::pin(async move {
            let login = || {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", &target)
                    .finish();
                actix_web::error::InternalError::from_response(
                    "sign-in required",
                    see_other(&format!("/login?{query}")),
                )
                .into()
            };
            let Some(user_id) = session.user_id() else {
                return Err(login());
            };
            let Some(state) = state else {
                return Err(AppError::NotFound.into());
            };
            let user = db::run(&state.pool, move |conn| {
                User::find(conn, user_id).map_err(DbError::from)
            })
            .await
            .map_err(AppError::from)?;
            match user {
                Some(user) => Ok(CurrentUser(user)),
                None => {
                    session.log_out();
                    Err(login())
                }
            }
        })
    }
}

/// A form carrying the session's CSRF token.
pub trait CsrfProtected {
    fn csrf_token(&self) -> &str;
}

/// A form whose CSRF token was checked: a missing or wrong token is a 403 and changes nothing.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + CsrfProtected + 'static> FromRequest for CsrfForm<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let session = TypedSession::from_session(req.get_session());
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = body.await.map_err(|e| {
                if super::limits::is_too_large(&e) {
                    AppError::TooLarge {
                        limit: super::limits::MAX_FORM_BODY,
                    }
                } else {
                    AppError::Csrf
                }
            })?;
            // serde_html_form reads repeated keys (checkboxes) into a Vec, as browsers send them.
            let form: T = serde_html_form::from_bytes(&body).map_err(|_| AppError::Csrf)?;
            if !session.check_csrf(form.csrf_token()) {
                return Err(AppError::Csrf.into());
            }
            Ok(CsrfForm(form))
        })
    }
}

/// A form with nothing but the CSRF token (sign out, confirmations).
#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf_token: String,
}

impl CsrfProtected for CsrfOnly {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// A form with one email address (sign-up's first step, forgotten password).
#[derive(serde::Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    pub email: String,
    /// Sign-up's page to go on to afterwards.
    pub next: Option<String>,
    #[serde(default)]
    pub csrf_token: String,
}

impl CsrfProtected for EmailForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// The address a request came from, for throttling and the audit log: the socket's peer, or,
/// when the peer is a trusted proxy, the last address in `X-Forwarded-For` that is not one of
/// ours (anyone can put anything at the start of that header).
/// The request's `User-Agent`, at most 512 bytes of it (the Security page names the device).
pub fn user_agent(req: &HttpRequest) -> String {
    let ua = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    ua.chars().take(512).collect()
}

pub fn client_address(req: &HttpRequest) -> String {
    let trusted: &[ipnet::IpNet] = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.trusted_proxies.as_slice())
        .unwrap_or_default();
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return "unknown".to_owned();
    };
    forwarded_client(
        peer,
        req.headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok()),
        trusted,
    )
    .to_string()
}

fn forwarded_client(
    peer: std::net::IpAddr,
    forwarded_for: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_for
        .unwrap_or_default()
        .split(',')
        .rev()
        .map(str::trim);
    let mut client = peer;
    for hop in hops {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        use super::forwarded_client;
        let proxy: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let other: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        let trusted = [proxy.into()];
        // Not from a proxy: the header is ignored.
        assert_eq!(forwarded_client(other, Some("1.2.3.4"), &trusted), other);
        // From the proxy: the last hop it added.
        assert_eq!(
            forwarded_client(proxy, Some("6.6.6.6, 198.51.100.7"), &trusted).to_string(),
            "198.51.100.7"
        );
        assert_eq!(
            forwarded_client(proxy, Some("198.51.100.7, 10.0.0.2"), &trusted).to_string(),
            "198.51.100.7"
        );
        assert_eq!(forwarded_client(proxy, None, &trusted), proxy);
        assert_eq!(forwarded_client(proxy, Some("garbage"), &trusted), proxy);

        // A range: every balancer in the pool is believed, and a hop inside it is skipped.
        let pool: [ipnet::IpNet; 1] = ["10.0.0.0/16".parse().unwrap()];
        let balancer: std::net::IpAddr = "10.0.7.9".parse().unwrap();
        assert_eq!(
            forwarded_client(balancer, Some("198.51.100.7, 10.0.3.3"), &pool).to_string(),
            "198.51.100.7"
        );
        let outside: std::net::IpAddr = "10.1.0.1".parse().unwrap();
        assert_eq!(forwarded_client(outside, Some("1.2.3.4"), &pool), outside);
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(
            safe_next(Some("/developer/applications?x=1")).as_deref(),
            Some("/developer/applications?x=1")
        );
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "/a\\b",
            "/\nx",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(safe_next(None), None);
    }
}

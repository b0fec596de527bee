//! An application's public keys for `private_key_jwt` (RFC 7523): the keys page lists them
//! (kid, type, added) and takes more as a pasted JWKS document; a key is removed after a page
//! that says what it breaks. Adding keys to an application that uses a client secret switches
//! it to private_key_jwt and ends its secrets at once, so the form asks to confirm that. Both
//! changes need the password within the re-authentication window (`routes::step_up`), as
//! secrets do: a key registered by a stolen session is as good as a stolen secret. Each is
//! audited and emailed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{app_path, ask_password, audit, owned, summary};
use crate::auth::session::TypedSession;
use crate::clients::{self, KeysError};
use crate::db;
use crate::db::models::{Client, User};
use crate::domain::MAX_KEYS;
use crate::email::Template;
use crate::error::AppError;
use crate::routes::page::{CsrfForm, CsrfProtected, CurrentUser, render, see_other};
use crate::routes::step_up;
use crate::state::AppState;

/// The longest JWKS document read (ten RSA-4096 keys fit with room to spare).
const MAX_DOCUMENT: usize = 64 * 1024;

fn keys_path(client: &Client) -> String {
    format!("{}/keys", app_path(client))
}

/// What the keys page shows of each key.
fn key_rows(client: &Client) -> Vec<serde_json::Value> {
    client
        .keys()
        .unwrap_or_default()
        .iter()
        .map(|k| {
            json!({
                "kid": k.kid(),
                "kind": k.kind().map_or("unknown", |kind| kind.label()),
                "added": k.added_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            })
        })
        .collect()
}

/// The keys page, with `document` kept in the form and `errors` beside its fields.
fn page(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    client: &Client,
    document: &str,
    errors: &[(&str, String)],
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let mut ctx = tera::Context::new();
    ctx.insert("app", &summary(client));
    ctx.insert("key_based", &client.jwks.is_some());
    ctx.insert("keys", &key_rows(client));
    ctx.insert("max_keys", &MAX_KEYS);
    ctx.insert("document", document);
    ctx.insert("token_url", &format!("{}/oauth/token", state.issuer));
    for (field, message) in errors {
        ctx.insert(format!("{field}_error"), message);
    }
    render(state, session, Some(user), "portal/keys.html", ctx, status)
}

/// `GET /developer/applications/{id}/keys`.
pub async fn show(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    if !client.is_confidential {
        session.flash(
            "error",
            "A public application has nothing to authenticate with: it uses PKCE instead.",
        );
        return Ok(see_other(&app_path(&client)));
    }
    page(&state, &session, &user, &client, "", &[], StatusCode::OK)
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    jwks: String,
    /// The box that says the application's secrets stop working (a secret-based one only).
    #[serde(default)]
    confirm_switch: Option<String>,
    #[serde(flatten)]
    given: step_up::Given,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for AddForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /developer/applications/{id}/keys`: adds the pasted keys.
pub async fn add(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<AddForm>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    if !client.is_confidential {
        return Err(AppError::NotFound);
    }
    let switching = client.jwks.is_none();
    let unprocessable = |errors: &[(&str, String)]| {
        page(
            &state,
            &session,
            &user,
            &client,
            &form.jwks,
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    if form.jwks.trim().is_empty() {
        return unprocessable(&[(
            "jwks",
            "Paste a JWKS document ({\"keys\": [...]}) or one public JWK.".to_owned(),
        )]);
    }
    if form.jwks.len() > MAX_DOCUMENT {
        return unprocessable(&[(
            "jwks",
            format!("The document is longer than {} KiB.", MAX_DOCUMENT / 1024),
        )]);
    }
    if switching && form.confirm_switch.is_none() {
        return unprocessable(&[(
            "confirm_switch",
            "Confirm that the client secret stops working: tick the box.".to_owned(),
        )]);
    }
    if let Err(refused) = step_up::confirm(&state, &req, &session, &user, &form.given).await? {
        let mut hidden = vec![("jwks", form.jwks.clone())];
        if switching {
            hidden.push(("confirm_switch", "on".to_owned()));
        }
        return ask_password(
            &state,
            &session,
            &user,
            &client,
            "register public keys",
            &keys_path(&client),
            &keys_path(&client),
            &hidden,
            refused,
        )
        .await;
    }
    let target = client.clone();
    let document = form.jwks.clone();
    let added = db::run(&state.pool, move |conn| {
        match clients::add_keys(conn, &target, &document) {
            Err(KeysError::Db(e)) => Err(e),
            other => Ok(other),
        }
    })
    .await?;
    let added = match added {
        Ok(added) => added,
        Err(e) => return unprocessable(&[("jwks", e.to_string())]),
    };
    audit(
        &state,
        &req,
        &user,
        Some(&client),
        "keys_added",
        format!(
            "{added} key{}{}",
            if added == 1 { "" } else { "s" },
            if switching {
                "; switched to private_key_jwt"
            } else {
                ""
            }
        ),
    )
    .await;
    let change = format!(
        "{added} key{} added{}",
        if added == 1 { "" } else { "s" },
        if switching {
            "; it now authenticates with private_key_jwt and its client secret no longer works"
        } else {
            ""
        }
    );
    notify(&state, &req, &user, &client, &change).await;
    session.flash(
        "success",
        if switching {
            format!(
                "{added} key{} registered. The application now authenticates with private_key_jwt; its client secret no longer works.",
                if added == 1 { "" } else { "s" }
            )
        } else {
            format!("{added} key{} added.", if added == 1 { "" } else { "s" })
        },
    );
    Ok(see_other(&keys_path(&client)))
}

#[derive(Deserialize)]
pub struct RemoveQuery {
    #[serde(default)]
    kid: String,
}

/// `GET /developer/applications/{id}/keys/remove?kid=…`: what removing the key breaks.
pub async fn remove_confirm(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    query: web::Query<RemoveQuery>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    let keys = client.keys().ok_or(AppError::NotFound)?;
    if !keys.iter().any(|k| k.kid() == query.kid) {
        return Err(AppError::NotFound);
    }
    let mut ctx = tera::Context::new();
    ctx.insert("app", &summary(&client));
    ctx.insert("kid", &query.kid);
    ctx.insert("last", &(keys.len() == 1));
    render(
        &state,
        &session,
        Some(&user),
        "portal/key_remove.html",
        ctx,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    kid: String,
    #[serde(flatten)]
    given: step_up::Given,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for RemoveForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /developer/applications/{id}/keys/remove`: removes one key.
pub async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<RemoveForm>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    if client.jwks.is_none() {
        return Err(AppError::NotFound);
    }
    if let Err(refused) = step_up::confirm(&state, &req, &session, &user, &form.given).await? {
        return ask_password(
            &state,
            &session,
            &user,
            &client,
            &format!("remove the key “{}”", form.kid),
            &format!("{}/remove", keys_path(&client)),
            &keys_path(&client),
            &vec![("kid", form.kid.clone())],
            refused,
        )
        .await;
    }
    let target = client.clone();
    let kid = form.kid.clone();
    let removed = db::run(&state.pool, move |conn| {
        clients::remove_key(conn, &target, &kid)
    })
    .await?;
    if !removed {
        return Err(AppError::NotFound);
    }
    audit(
        &state,
        &req,
        &user,
        Some(&client),
        "key_removed",
        form.kid.clone(),
    )
    .await;
    notify(
        &state,
        &req,
        &user,
        &client,
        &format!("the key “{}” was removed", form.kid),
    )
    .await;
    session.flash(
        "success",
        format!(
            "Key “{}” removed: assertions signed with it are refused from now on.",
            form.kid
        ),
    );
    Ok(see_other(&keys_path(&client)))
}

/// Emails the owner what changed in `client`'s keys.
async fn notify(state: &AppState, req: &HttpRequest, user: &User, client: &Client, change: &str) {
    let Some(to) = user.email.as_deref() else {
        return;
    };
    let when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let ip = crate::routes::page::client_address(req);
    let message = Template::KeyEvent {
        name: &user.name,
        app: &client.name,
        change,
        when: &when,
        ip: &ip,
    }
    .render(&state.templates, to);
    state.mailer.deliver(message).await;
}

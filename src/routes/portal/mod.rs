//! Developer › Applications: the merchant portal. Every page is the signed-in merchant's own;
//! another merchant's application answers 404, exactly like one that does not exist.

mod activity;
mod connect;
mod form;
mod keys;
mod lifecycle;
mod secrets;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::page::{CsrfForm, CurrentUser, client_address, render, see_other};
use crate::auth::session::TypedSession;
use crate::clients::{self, Changes, RegisterError, Registration};
use crate::db::models::{AuditEvent, Client, ClientSecret, Scope, User};
use crate::db::{self, DbError};
use crate::error::AppError;
use crate::state::AppState;
use form::AppForm;

pub use activity::csv as activity_csv;
pub use activity::show as activity;
pub use keys::{
    add as add_keys, remove as remove_key, remove_confirm as remove_key_confirm, show as keys,
};
pub use lifecycle::{delete, delete_confirm, disable_confirm, toggle};
pub use secrets::{reveal, revoke_old, rotate};

const LIST: &str = "/developer/applications";

/// The session key under which a just-issued secret waits to be shown once.
fn fresh_secret_key(client_id: &str) -> String {
    format!("fresh_secret:{client_id}")
}

/// Authenticates a sealed fresh secret, so it opens only for the application it was made for.
fn fresh_secret_context(client_id: &str) -> String {
    format!("latchkey fresh secret {client_id}")
}

/// Keeps a just-issued secret for the next view of the application, sealed under the server key
/// (XChaCha20-Poly1305), as `client_secrets` keeps it: the session store writes session state
/// to the database, and nothing that grants access is stored in clear there either.
fn keep_fresh_secret(
    state: &AppState,
    session: &TypedSession,
    client: &Client,
    secret: &str,
) -> Result<(), AppError> {
    let sealed = state
        .server_key
        .encrypt(secret.as_bytes(), &fresh_secret_context(&client.client_id));
    session.put(&fresh_secret_key(&client.client_id), &sealed)?;
    Ok(())
}

/// The just-issued secret of `client`, once: it is removed from the session as it is read.
fn take_fresh_secret(state: &AppState, session: &TypedSession, client: &Client) -> Option<String> {
    let key = fresh_secret_key(&client.client_id);
    let sealed: String = session.get(&key)?;
    session.remove(&key);
    let plain = state
        .server_key
        .decrypt(&sealed, &fresh_secret_context(&client.client_id))
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

fn app_path(client: &Client) -> String {
    format!("{LIST}/{}", client.client_id)
}

/// Loads one of the merchant's applications, or 404.
async fn owned(state: &AppState, user: &User, client_id: String) -> Result<Client, AppError> {
    let owner = user.id;
    db::run(&state.pool, move |conn| {
        Client::find_owned(conn, owner, &client_id).map_err(DbError::from)
    })
    .await?
    .ok_or(AppError::NotFound)
}

/// Records an audit event; a failure is logged, never shown.
pub(crate) async fn audit(
    state: &AppState,
    req: &HttpRequest,
    user: &User,
    client: Option<&Client>,
    action: &'static str,
    detail: String,
) {
    let (user_id, client_id, ip) = (user.id, client.map(|c| c.id), client_address(req));
    let result = db::run(&state.pool, move |conn| {
        AuditEvent::record(conn, Some(user_id), client_id, action, &detail, Some(&ip))
            .map_err(DbError::from)
    })
    .await;
    if let Err(e) = result {
        tracing::error!(error = %crate::error::error_chain(&e), "recording an audit event failed");
    }
}

/// The password page (`portal/reauth.html`) before `purpose` on `client`, posting back to
/// `action` with the form's `hidden` fields, `refused` beside the field if a password was given
/// and did not pass, and a way back to `cancel`.
#[allow(clippy::too_many_arguments)]
async fn ask_password(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    client: &Client,
    purpose: &str,
    action: &str,
    cancel: &str,
    hidden: &crate::routes::step_up::Hidden,
    refused: crate::routes::step_up::Refused,
) -> Result<HttpResponse, AppError> {
    use crate::routes::step_up;
    let purpose = format!("{purpose} of “{}”", client.name);
    step_up::ask(
        state,
        session,
        user,
        &step_up::Ask {
            purpose: &purpose,
            action,
            cancel,
            hidden,
        },
        refused,
    )
    .await
}

/// What the list and the detail page show of an application.
fn summary(client: &Client) -> serde_json::Value {
    json!({
        "client_id": client.client_id,
        "name": client.name,
        "initials": crate::domain::initials(&client.name),
        "description": client.description,
        "logo_url": client.logo_url,
        "home_page_url": client.home_page_url,
        "privacy_policy_url": client.privacy_policy_url,
        "live": client.is_live,
        "environment": if client.is_live { "Live" } else { "Sandbox" },
        "confidential": client.is_confidential,
        "key_based": client.jwks.is_some(),
        "keys": client.keys().map_or(0, |k| k.len()),
        "security": security_labels(client),
        "enabled": client.is_enabled,
        "created": client.created_at.format("%Y-%m-%d").to_string(),
        "redirect_uris": client.redirect_uris().iter().map(|u| u.as_str().to_owned()).collect::<Vec<_>>(),
        "grant_types": client.allowed_grant_types().iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scopes": client.allowed_scopes().iter().map(|s| s.as_str().to_owned()).collect::<Vec<_>>(),
    })
}

pub async fn list(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let owner = user.id;
    let apps = db::run(&state.pool, move |conn| {
        Client::list_owned(conn, owner).map_err(DbError::from)
    })
    .await?;
    let mut ctx = tera::Context::new();
    ctx.insert("apps", &apps.iter().map(summary).collect::<Vec<_>>());
    // Live applications from before the rule, on an account that still has no factor: they
    // keep working, and the owner is asked to add one.
    let live_without_factor = state.require_mfa_for_live
        && apps.iter().any(|a| a.is_live)
        && !crate::routes::step_up::has_factor(&state, &user).await?;
    ctx.insert("live_without_factor", &live_without_factor);
    render(
        &state,
        &session,
        Some(&user),
        "portal/list.html",
        ctx,
        StatusCode::OK,
    )
}

/// The form's own verdict with `more` errors beside it.
fn merge_errors(
    checked: Result<form::Checked, form::Errors>,
    more: form::Errors,
) -> Result<form::Checked, form::Errors> {
    match checked {
        Ok(checked) if more.is_empty() => Ok(checked),
        Ok(_) => Err(more),
        Err(mut errors) => {
            for (field, message) in more {
                errors.entry(field).or_insert(message);
            }
            Err(errors)
        }
    }
}

/// `LATCHKEY_REQUIRE_MFA_FOR_LIVE`: making an application live (it was not) needs a second
/// factor on the account. One that is live already stays live.
async fn live_needs_factor(
    state: &AppState,
    user: &User,
    input: &AppForm,
    was_live: bool,
    errors: &mut form::Errors,
) -> Result<(), AppError> {
    if !state.require_mfa_for_live || was_live || input.environment != "live" {
        return Ok(());
    }
    if !crate::routes::step_up::has_factor(state, user).await? {
        errors.insert("environment", form::LIVE_NEEDS_FACTOR.to_owned());
    }
    Ok(())
}

async fn registered_scopes(state: &AppState) -> Result<Vec<Scope>, AppError> {
    Ok(db::run(&state.pool, |conn| Scope::all(conn).map_err(DbError::from)).await?)
}

fn email_verified(user: &User) -> bool {
    user.email.is_none() || user.email_verified_at.is_some()
}

pub async fn new(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, AppError> {
    let scopes = registered_scopes(&state).await?;
    let mut blank = form::blank();
    blank.scopes = scopes
        .iter()
        .filter(|s| !clients::is_identity_scope(&s.name))
        .map(|s| s.name.clone())
        .collect();
    let ctx = form::context(&blank, &form::Errors::new(), &scopes, None);
    render(
        &state,
        &session,
        Some(&user),
        "portal/form.html",
        ctx,
        StatusCode::OK,
    )
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    CsrfForm(input): CsrfForm<AppForm>,
) -> Result<HttpResponse, AppError> {
    let scopes = registered_scopes(&state).await?;
    let checked = form::check(&input, &scopes, email_verified(&user));
    let mut policy = form::Errors::new();
    live_needs_factor(&state, &user, &input, false, &mut policy).await?;
    let checked = merge_errors(checked, policy);
    let checked = match checked {
        Ok(checked) => checked,
        Err(errors) => {
            let ctx = form::context(&input, &errors, &scopes, None);
            return render(
                &state,
                &session,
                Some(&user),
                "portal/form.html",
                ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    if checked.live
        && let Some(page) =
            lifecycle::confirm_live(&state, &req, &session, &user, &input, None).await?
    {
        return Ok(page);
    }
    let registration = Registration {
        owner: user.username.clone(),
        name: checked.name,
        details: checked.details,
        redirect_uris: checked.redirect_uris,
        grant_types: Some(checked.grant_types),
        scopes: Some(checked.scopes.iter().cloned().collect()),
        confidential: checked.confidential,
        live: checked.live,
        keys: None,
        security: Default::default(),
    };
    let key = state.server_key.clone();
    let registered = db::run(&state.pool, move |conn| {
        clients::register(conn, &key, &registration)
    })
    .await;
    let registered = match registered {
        Ok(r) => r,
        Err(RegisterError::Db(e)) => return Err(e.into()),
        Err(e) => {
            // The form's checks mirror these rules; this is the backstop.
            let errors = form::Errors::from([("name", e.to_string())]);
            let ctx = form::context(&input, &errors, &scopes, None);
            return render(
                &state,
                &session,
                Some(&user),
                "portal/form.html",
                ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    let client = registered.client;
    audit(&state, &req, &user, Some(&client), "created", String::new()).await;
    if client.is_live {
        lifecycle::record_live(&state, &req, &user, &client).await;
    }
    if let Some(secret) = registered.secret {
        keep_fresh_secret(&state, &session, &client, &secret)?;
    }
    session.flash("success", format!("Application “{}” created.", client.name));
    Ok(see_other(&app_path(&client)))
}

pub async fn show(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    let lookup = client.id;
    let secrets = db::run(&state.pool, move |conn| {
        ClientSecret::all_for(conn, lookup).map_err(DbError::from)
    })
    .await?;
    let fresh = take_fresh_secret(&state, &session, &client);
    let mut ctx = tera::Context::new();
    ctx.insert("app", &summary(&client));
    ctx.insert("secrets", &secret_rows(&secrets));
    ctx.insert(
        "connect",
        &connect::card(&state.issuer, &client, fresh.as_deref()),
    );
    ctx.insert("fresh_secret", &fresh);
    render(
        &state,
        &session,
        Some(&user),
        "portal/show.html",
        ctx,
        StatusCode::OK,
    )
}

fn secret_rows(secrets: &[ClientSecret]) -> Vec<serde_json::Value> {
    let now = db::now();
    secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|t| t > now))
        .map(|s| {
            json!({
                "id": s.id,
                "hint": s.secret_hint,
                "created": s.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                "last_used": s.last_used_at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                "expires": s.expires_at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                "current": s.expires_at.is_none(),
            })
        })
        .collect()
}

pub async fn edit(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    let scopes = registered_scopes(&state).await?;
    let ctx = form::context(
        &form::from_client(&client),
        &form::Errors::new(),
        &scopes,
        Some(&client),
    );
    render(
        &state,
        &session,
        Some(&user),
        "portal/form.html",
        ctx,
        StatusCode::OK,
    )
}

pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    CsrfForm(mut input): CsrfForm<AppForm>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    // The kind of client is fixed at creation.
    input.client_type = if client.is_confidential {
        "confidential"
    } else {
        "public"
    }
    .to_owned();
    let scopes = registered_scopes(&state).await?;
    let checked = form::check(&input, &scopes, email_verified(&user) || client.is_live);
    let mut more = form::Errors::new();
    form::check_security(&input, &client, &mut more);
    live_needs_factor(&state, &user, &input, client.is_live, &mut more).await?;
    let checked = merge_errors(checked, more);
    let checked = match checked {
        Ok(checked) => checked,
        Err(errors) => {
            let ctx = form::context(&input, &errors, &scopes, Some(&client));
            return render(
                &state,
                &session,
                Some(&user),
                "portal/form.html",
                ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    if checked.live
        && !client.is_live
        && let Some(page) =
            lifecycle::confirm_live(&state, &req, &session, &user, &input, Some(&client)).await?
    {
        return Ok(page);
    }
    let changes = Changes {
        name: checked.name,
        details: checked.details,
        redirect_uris: checked.redirect_uris,
        grant_types: checked.grant_types,
        scopes: checked.scopes,
        live: checked.live,
        security: input.security(),
    };
    let before = client.clone();
    let updated = db::run(&state.pool, move |conn| {
        clients::update(conn, &before, &changes)
    })
    .await;
    let updated = match updated {
        Ok(c) => c,
        Err(RegisterError::Db(e)) => return Err(e.into()),
        Err(e) => {
            let field = match &e {
                RegisterError::Invalid { field: "fapi2", .. } => "fapi2",
                _ => "name",
            };
            let errors = form::Errors::from([(field, e.to_string())]);
            let ctx = form::context(&input, &errors, &scopes, Some(&client));
            return render(
                &state,
                &session,
                Some(&user),
                "portal/form.html",
                ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    let changed = changed_fields(&client, &updated);
    audit(
        &state,
        &req,
        &user,
        Some(&updated),
        "edited",
        changed.join(", "),
    )
    .await;
    if updated.is_live && !client.is_live {
        lifecycle::record_live(&state, &req, &user, &updated).await;
    }
    session.flash("success", "Your changes were saved.");
    Ok(see_other(&app_path(&updated)))
}

/// The financial-grade settings that are on, as the Settings card lists them.
fn security_labels(client: &Client) -> Vec<&'static str> {
    if client.fapi2 {
        return vec!["FAPI 2.0 (pushed requests, PKCE, DPoP, private_key_jwt)"];
    }
    let mut on = Vec::new();
    if client.require_par {
        on.push("pushed authorization requests required");
    }
    if client.dpop_bound {
        on.push("DPoP-bound tokens required");
    }
    on
}

/// Names of the settings an edit changed, for the activity log.
fn changed_fields(before: &Client, after: &Client) -> Vec<&'static str> {
    let pairs: [(&'static str, bool); 12] = [
        ("name", before.name != after.name),
        ("description", before.description != after.description),
        ("home page", before.home_page_url != after.home_page_url),
        ("logo", before.logo_url != after.logo_url),
        (
            "privacy policy",
            before.privacy_policy_url != after.privacy_policy_url,
        ),
        ("redirect URIs", before.redirect_uri != after.redirect_uri),
        ("grant types", before.grant_types != after.grant_types),
        ("scopes", before.scopes != after.scopes),
        ("environment", before.is_live != after.is_live),
        ("pushed requests", before.require_par != after.require_par),
        ("DPoP", before.dpop_bound != after.dpop_bound),
        ("FAPI 2.0", before.fapi2 != after.fapi2),
    ];
    pairs.iter().filter(|(_, c)| *c).map(|(n, _)| *n).collect()
}

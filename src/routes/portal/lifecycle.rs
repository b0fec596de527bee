//! The changes that reach an application's customers at once: going live, disabling, deleting.
//! Each has a page that says what happens, and the same page asks for the step-up
//! (`routes::step_up`) when the window is closed: a stolen session must not be able to take an
//! application offline, delete it, or point real money at it. Enabling again asks for nothing:
//! it only undoes a disable.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::form::AppForm;
use super::{LIST, app_path, audit, owned};
use crate::auth::session::TypedSession;
use crate::clients;
use crate::db::models::{Client, User};
use crate::db::{self, DbError};
use crate::error::AppError;
use crate::routes::page::{CsrfForm, CsrfProtected, CurrentUser, see_other};
use crate::routes::step_up::{self, Consequences, Refused};
use crate::state::AppState;

/// Whether the application form may be saved as it is, when it makes an application live that
/// was not: only after the page that says what going live means was confirmed (its
/// `confirm_live` marker) with the step-up. Otherwise the answer is that page, carrying the
/// whole form along. `editing` is the application being edited, `None` on creation.
pub(super) async fn confirm_live(
    state: &AppState,
    req: &HttpRequest,
    session: &TypedSession,
    user: &User,
    input: &AppForm,
    editing: Option<&Client>,
) -> Result<Option<HttpResponse>, AppError> {
    let refused = if input.confirm_live.is_some() {
        match step_up::confirm(state, req, session, user, &input.given()).await? {
            Ok(()) => return Ok(None),
            Err(refused) => Some(refused),
        }
    } else {
        step_up::pending(state, session, user).await?
    };
    let (action, cancel) = match editing {
        Some(client) => {
            let edit = format!("{}/edit", app_path(client));
            (edit.clone(), edit)
        }
        None => (LIST.to_owned(), format!("{LIST}/new")),
    };
    let name = input.name.trim();
    let title = format!("Take “{name}” live?");
    let points = [
        "people who approve it sign in with their real accounts, and what it does with their tokens moves real money;".to_owned(),
        "anyone who holds its client secret or keys can do the same: keep them on your server only;".to_owned(),
        "its redirect URIs must use https:// (http:// only for localhost).".to_owned(),
    ];
    let consequences = Consequences {
        title: &title,
        lead: "A live application works with real customers and real money:",
        points: &points,
        note: Some("Until your integration is ready, keep building and testing it in Sandbox."),
        button: "Go live",
        type_to_confirm: None,
    };
    let purpose = format!("take “{name}” live");
    let page = step_up::ask_confirming(
        state,
        session,
        user,
        &step_up::Ask {
            purpose: &purpose,
            action: &action,
            cancel: &cancel,
            hidden: &input.hidden(),
        },
        &consequences,
        refused,
    )
    .await?;
    Ok(Some(page))
}

/// The page that says what disabling `client` does, with the step-up's fields unless the
/// window is open. What it says is what the code does: the client fails authentication
/// (`oauth::client_auth`), its tokens fail at the resources (`oauth::bearer`) and in
/// introspection, and the authorization endpoint shows a page instead of signing anyone in.
async fn disable_page(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    client: &Client,
    refused: Option<Refused>,
) -> Result<HttpResponse, AppError> {
    let title = format!("Disable “{}”?", client.name);
    let points = [
        "every request it authenticates with its client ID — for tokens, refreshing them, introspection, revocation or pushed requests — fails with invalid_client;".to_owned(),
        "the API refuses its access tokens (invalid_token), and introspection calls them inactive;".to_owned(),
        "people sent to sign in to it see a page that says it is disabled.".to_owned(),
    ];
    let consequences = Consequences {
        title: &title,
        lead: "From now until you enable it again:",
        points: &points,
        note: Some(
            "Nothing is deleted: when you enable it again, its secrets or keys and the tokens that have not expired work again.",
        ),
        button: "Disable the application",
        type_to_confirm: None,
    };
    let purpose = format!("disable “{}”", client.name);
    step_up::ask_confirming(
        state,
        session,
        user,
        &step_up::Ask {
            purpose: &purpose,
            action: &format!("{}/toggle", app_path(client)),
            cancel: &app_path(client),
            hidden: &vec![("confirm_disable", "on".to_owned())],
        },
        &consequences,
        refused,
    )
    .await
}

/// `GET /developer/applications/{id}/disable`: what disabling does, and the button.
pub async fn disable_confirm(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    if !client.is_enabled {
        session.flash("info", "This application is disabled already.");
        return Ok(see_other(&app_path(&client)));
    }
    let refused = step_up::pending(&state, &session, &user).await?;
    disable_page(&state, &session, &user, &client, refused).await
}

#[derive(Deserialize)]
pub struct ToggleForm {
    /// Sent by the page that says what disabling does ([`disable_confirm`]).
    #[serde(default)]
    confirm_disable: Option<String>,
    #[serde(flatten)]
    given: step_up::Given,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for ToggleForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /developer/applications/{id}/toggle`: enables a disabled application at once; disables
/// an enabled one only from its confirmation page and after the step-up. The marker also keeps
/// a form sent twice from enabling again what it just disabled.
pub async fn toggle(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<ToggleForm>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    let disabling = form.confirm_disable.is_some();
    if disabling && !client.is_enabled {
        session.flash("info", "This application is disabled already.");
        return Ok(see_other(&app_path(&client)));
    }
    if client.is_enabled && !disabling {
        return Ok(see_other(&format!("{}/disable", app_path(&client))));
    }
    if disabling
        && let Err(refused) = step_up::confirm(&state, &req, &session, &user, &form.given).await?
    {
        return disable_page(&state, &session, &user, &client, Some(refused)).await;
    }
    let enable = !disabling;
    let target = client.id;
    db::run(&state.pool, move |conn| {
        Client::set_enabled(conn, target, enable, db::now()).map_err(DbError::from)
    })
    .await?;
    audit(
        &state,
        &req,
        &user,
        Some(&client),
        if enable { "enabled" } else { "disabled" },
        String::new(),
    )
    .await;
    session.flash(
        "success",
        if enable {
            "Application enabled: it can get tokens again."
        } else {
            "Application disabled: it gets invalid_client everywhere until you enable it."
        },
    );
    Ok(see_other(&app_path(&client)))
}

/// The page that says what deleting `client` does, with the step-up's fields unless the window
/// is open.
async fn delete_page(
    state: &AppState,
    session: &TypedSession,
    user: &User,
    client: &Client,
    refused: Option<Refused>,
    typed: Option<&str>,
) -> Result<HttpResponse, AppError> {
    let target = client.clone();
    let usage = db::run(&state.pool, move |conn| {
        clients::usage(conn, &target).map_err(DbError::from)
    })
    .await?;
    let people = match usage.authorized_users {
        1 => "1 person who has".to_owned(),
        n => format!("{n} people who have"),
    };
    let title = format!("Delete “{}”?", client.name);
    let points = [
        "its client ID and secrets stop working;".to_owned(),
        "every access and refresh token it holds is revoked;".to_owned(),
        format!("{people} authorized it will have to authorize a new application."),
    ];
    let consequences = Consequences {
        title: &title,
        lead: "Deleting it cannot be undone. At once:",
        points: &points,
        note: Some("To stop it for a while instead, disable it: you can enable it again later."),
        button: &format!("Delete {}", client.name),
        // A live application: its name typed, so a slip of the finger cannot end it.
        type_to_confirm: client.is_live.then(|| step_up::TypeToConfirm {
            name: &client.name,
            typed: typed.unwrap_or_default(),
            error: typed
                .filter(|t| t.trim() != client.name)
                .map(|_| "That is not the application's name. Type it exactly as shown."),
        }),
    };
    let purpose = format!("delete “{}”", client.name);
    step_up::ask_confirming(
        state,
        session,
        user,
        &step_up::Ask {
            purpose: &purpose,
            action: &format!("{}/delete", app_path(client)),
            cancel: &app_path(client),
            hidden: &Vec::new(),
        },
        &consequences,
        refused,
    )
    .await
}

/// `GET /developer/applications/{id}/delete`: what deleting breaks, and the button.
pub async fn delete_confirm(
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    let refused = step_up::pending(&state, &session, &user).await?;
    delete_page(&state, &session, &user, &client, refused, None).await
}

#[derive(Deserialize)]
pub struct DeleteForm {
    /// A live application's name, typed.
    #[serde(default)]
    confirm_name: String,
    #[serde(flatten)]
    given: step_up::Given,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for DeleteForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /developer/applications/{id}/delete`: deletes the application after the step-up.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    CurrentUser(user): CurrentUser,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> Result<HttpResponse, AppError> {
    let client = owned(&state, &user, path.into_inner()).await?;
    if client.is_live && form.confirm_name.trim() != client.name {
        // Checked before the step-up, which is then not spent on a slip.
        let refused = step_up::pending(&state, &session, &user).await?;
        let typed = form.confirm_name.chars().take(200).collect::<String>();
        return delete_page(&state, &session, &user, &client, refused, Some(&typed)).await;
    }
    if let Err(refused) = step_up::confirm(&state, &req, &session, &user, &form.given).await? {
        let typed = Some(form.confirm_name.as_str()).filter(|_| client.is_live);
        return delete_page(&state, &session, &user, &client, Some(refused), typed).await;
    }
    let target = client.id;
    db::run(&state.pool, move |conn| {
        Client::delete(conn, target).map_err(DbError::from)
    })
    .await?;
    // The application's own log goes with it; the account keeps a record.
    audit(
        &state,
        &req,
        &user,
        None,
        "deleted",
        format!("{} ({})", client.name, client.client_id),
    )
    .await;
    session.flash(
        "success",
        format!(
            "Application “{}” deleted. Every token it had was revoked.",
            client.name
        ),
    );
    Ok(see_other(LIST))
}

/// Records that `client` went live, beside its `created` or `edited` event.
pub(super) async fn record_live(state: &AppState, req: &HttpRequest, user: &User, client: &Client) {
    audit(state, req, user, Some(client), "went_live", String::new()).await;
}

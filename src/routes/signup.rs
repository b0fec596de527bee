//! Signing up, email first: `/signup` asks only for an address and always answers "check your
//! inbox"; the message sent there carries the next step. A new address gets a link to
//! `/signup/{token}`, where its holder chooses a username and a password; an address that
//! already has an account gets a reminder to sign in instead. The page therefore says nothing
//! about which addresses are registered, and its timing cannot either: the lookup and the mail
//! happen after the answer, as for password resets.
//!
//! Usernames are public handles (the profile API and the consent page show them), so the
//! second step does say when one is taken; reaching it needs a link from a real inbox.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::page::{
    CsrfForm, CsrfProtected, EmailForm, client_address, render, safe_next, see_other,
};
use super::session::HOME;
use crate::accounts::{self, CreateUserError, NewAccount, Recipient, SignupLink};
use crate::auth::session::TypedSession;
use crate::db::models::{AuditEvent, User};
use crate::db::{self, DbError};
use crate::domain::{DisplayName, Email, NewPassword, Username};
use crate::email::Template;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /signup[?next=…]`: `next` is where to go once the account exists, as for the login
/// page (the login page passes its own on).
pub async fn start_form(
    state: web::Data<AppState>,
    session: TypedSession,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, AppError> {
    let next = safe_next(query.next.as_deref());
    if session.user_id().is_some() {
        return Ok(see_other(next.as_deref().unwrap_or(HOME)));
    }
    let mut ctx = form_context(&HashMap::new(), &HashMap::new());
    ctx.insert("next", &next);
    render(&state, &session, None, "signup.html", ctx, StatusCode::OK)
}

/// `POST /signup`: the same page for every well-formed address; the mail tells the rest.
pub async fn start(
    state: web::Data<AppState>,
    session: TypedSession,
    CsrfForm(form): CsrfForm<EmailForm>,
) -> Result<HttpResponse, AppError> {
    let next = safe_next(form.next.as_deref());
    let email = match Email::parse(&form.email) {
        Ok(email) => email,
        Err(e) => {
            let mut ctx = form_context(
                &HashMap::from([("email", form.email.clone())]),
                &HashMap::from([("email", format!("Email address {e}."))]),
            );
            ctx.insert("next", &next);
            return render(
                &state,
                &session,
                None,
                "signup.html",
                ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    let background = state.clone();
    let link_next = next.clone();
    let link = SignupLink {
        email: email.clone(),
        next,
    };
    actix_web::rt::spawn(async move { send_next_step(&background, link).await });
    let mut ctx = tera::Context::new();
    ctx.insert("email", email.as_str());
    ctx.insert("next", &link_next);
    ctx.insert("hours", &accounts::SIGNUP_TTL.num_hours());
    render(
        &state,
        &session,
        None,
        "signup_sent.html",
        ctx,
        StatusCode::OK,
    )
}

/// Mails a sign-up link to a new address, or a reminder to an address that has an account.
async fn send_next_step(state: &AppState, link: SignupLink) {
    let address = link.email.as_str().to_owned();
    let recipient = db::run(&state.pool, move |conn| {
        accounts::recipient(conn, &address, db::now()).map_err(DbError::from)
    })
    .await;
    let message = match recipient {
        Ok(Recipient::Free) => {
            let token = accounts::signup_token(&state.server_key, &link, db::now());
            let url = format!("{}/signup/{token}", state.issuer);
            Template::SignUp {
                link: &url,
                hours: accounts::SIGNUP_TTL.num_hours(),
            }
            .render(&state.templates, link.email.as_str())
        }
        Ok(Recipient::Registered(user)) => already_registered(state, &user),
        Ok(Recipient::Rationed) => {
            tracing::warn!("sign-up mail withheld: too many for this address");
            return;
        }
        Err(e) => {
            tracing::error!(error = %crate::error::error_chain(&e), "sign-up lookup failed");
            return;
        }
    };
    state.mailer.deliver(message).await;
}

/// The reminder sent instead, when someone asks to use an address that has an account.
pub(super) fn already_registered(
    state: &AppState,
    user: &User,
) -> Result<crate::email::Email, crate::email::MailError> {
    let issuer = &state.issuer;
    Template::AlreadyRegistered {
        name: &user.name,
        username: &user.username,
        sign_in: &format!("{issuer}/login"),
        reset: &format!("{issuer}/password/forgot"),
    }
    .render(&state.templates, user.email.as_deref().unwrap_or_default())
}

fn form_context(values: &HashMap<&str, String>, errors: &HashMap<&str, String>) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("values", values);
    ctx.insert("errors", errors);
    ctx.insert("min_password", &NewPassword::MIN);
    ctx
}

/// The second step's page: the form, or why the link cannot be used.
enum Link {
    Usable(SignupLink),
    Invalid,
    /// The address has an account: this link made it, or another one did meanwhile.
    Used(Email),
}

async fn open_link(state: &AppState, token: &str) -> Result<Link, AppError> {
    let Some(link) = accounts::open_signup_token(&state.server_key, token, db::now()) else {
        return Ok(Link::Invalid);
    };
    let address = link.email.as_str().to_owned();
    let registered = db::run(&state.pool, move |conn| {
        User::find_by_email(conn, &address).map_err(DbError::from)
    })
    .await?
    .is_some();
    Ok(if registered {
        Link::Used(link.email)
    } else {
        Link::Usable(link)
    })
}

fn unusable(
    state: &AppState,
    session: &TypedSession,
    link: &Link,
) -> Result<HttpResponse, AppError> {
    let mut ctx = tera::Context::new();
    match link {
        Link::Used(email) => {
            ctx.insert("title", "You already have an account");
            ctx.insert(
                "message",
                &format!(
                    "An account with {} exists, so this link has done its work. Sign in, or reset your password if you have forgotten it.",
                    email.as_str()
                ),
            );
        }
        _ => {
            ctx.insert("title", "This link does not work");
            ctx.insert(
                "message",
                &format!(
                    "The sign-up link is incomplete or more than {} hours old. Enter your email address again and we will send you a new one.",
                    accounts::SIGNUP_TTL.num_hours()
                ),
            );
            ctx.insert("action", &("/signup", "Get a new sign-up link"));
        }
    }
    render(
        state,
        session,
        None,
        "message.html",
        ctx,
        StatusCode::BAD_REQUEST,
    )
}

fn finish_context(
    token: &str,
    email: &Email,
    values: &HashMap<&str, String>,
    errors: &HashMap<&str, String>,
) -> tera::Context {
    let mut ctx = form_context(values, errors);
    ctx.insert("token", token);
    ctx.insert("email", email.as_str());
    ctx
}

/// `GET /signup/{token}`: choose a username and a password. Opening the link changes nothing,
/// so a mail scanner that follows it spends nothing.
pub async fn finish_form(
    state: web::Data<AppState>,
    session: TypedSession,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    if session.user_id().is_some() {
        session.flash(
            "info",
            "You are signed in. Sign out first to create another account.",
        );
        return Ok(see_other(HOME));
    }
    let link = open_link(&state, &token).await?;
    let Link::Usable(SignupLink { email, .. }) = &link else {
        return unusable(&state, &session, &link);
    };
    render(
        &state,
        &session,
        None,
        "signup_finish.html",
        finish_context(&token, email, &HashMap::new(), &HashMap::new()),
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct FinishForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

impl CsrfProtected for FinishForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /signup/{token}`: creates the account, with its address confirmed by the link, and
/// signs it in.
pub async fn finish(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    token: web::Path<String>,
    CsrfForm(form): CsrfForm<FinishForm>,
) -> Result<HttpResponse, AppError> {
    let link = open_link(&state, &token).await?;
    let Link::Usable(SignupLink { email, next }) = link else {
        return unusable(&state, &session, &link);
    };
    let mut errors: HashMap<&str, String> = HashMap::new();
    let username = Username::parse(&form.username)
        .map_err(|e| errors.insert("username", format!("Username {e}.")));
    let name = DisplayName::parse(&form.name)
        .map_err(|e| errors.insert("name", format!("Display name {e}.")));
    let password = match &username {
        Ok(u) => NewPassword::parse(&form.password, u)
            .map_err(|e| errors.insert("password", format!("Password {e}."))),
        Err(_) => Err(None),
    };
    let values = HashMap::from([
        ("username", form.username.clone()),
        ("name", form.name.clone()),
    ]);
    let refuse = |errors: &HashMap<&str, String>| {
        render(
            &state,
            &session,
            None,
            "signup_finish.html",
            finish_context(&token, &email, &values, errors),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    let (Ok(username), Ok(name), Ok(password)) = (username, name, password) else {
        if !errors.contains_key("password") && form.password.chars().count() < NewPassword::MIN {
            errors.insert(
                "password",
                format!(
                    "Password must be at least {} characters long.",
                    NewPassword::MIN
                ),
            );
        }
        return refuse(&errors);
    };

    let account = NewAccount {
        username,
        name,
        email: Some(email.clone()),
        email_verified: true,
        password,
        // Signing up from the portal, not to authorize an application.
        developer: next.as_deref() != Some(super::authorize::RESUME),
    };
    let passwords = state.passwords.clone();
    let _admitted = passwords.admit().await;
    let address = client_address(&req);
    let created = db::run(&state.pool, move |conn| {
        let (username_taken, email_taken) =
            accounts::taken(conn, account.username.as_str(), email_address(&account))
                .map_err(DbError::from)?;
        if email_taken {
            return Err(CreateUserError::EmailTaken(email_address(&account).into()));
        }
        if username_taken {
            return Err(CreateUserError::UsernameTaken(
                account.username.as_str().into(),
            ));
        }
        let user = accounts::create_user(conn, &passwords, &account)?;
        AuditEvent::record(
            conn,
            Some(user.id),
            None,
            "signed_in",
            "signed up",
            Some(&address),
        )
        .map_err(DbError::from)?;
        Ok(user)
    })
    .await;
    let user = match created {
        Ok(user) => user,
        Err(CreateUserError::UsernameTaken(_)) => {
            return refuse(&HashMap::from([(
                "username",
                "This username is taken. Choose another one.".to_owned(),
            )]));
        }
        // Another link for the same address won the race.
        Err(CreateUserError::EmailTaken(_)) => {
            return unusable(&state, &session, &Link::Used(email));
        }
        Err(CreateUserError::Db(e)) => return Err(e.into()),
        Err(CreateUserError::Hash(e)) => return Err(e.into()),
    };
    session.log_in(
        user.id,
        &super::page::user_agent(&req),
        &super::page::client_address(&req),
    )?;
    session.flash(
        "success",
        format!(
            "Welcome to Latchkey, {}! Your account is ready and {} is confirmed.",
            user.name,
            email.as_str()
        ),
    );
    // Checked again, though only this server can seal a link.
    Ok(see_other(
        safe_next(next.as_deref()).as_deref().unwrap_or(HOME),
    ))
}

fn email_address(account: &NewAccount) -> &str {
    account
        .email
        .as_ref()
        .map(Email::as_str)
        .unwrap_or_default()
}

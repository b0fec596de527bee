//! The application form (create and edit): reading, checking every field, and the context that
//! re-renders it with the merchant's input and an error beside each wrong field.

use std::collections::HashMap;

use serde::Deserialize;
use validator::Validate;

use crate::clients::ClientDetails;
use crate::db::models::{Client, Scope, Security};
use crate::domain::{ClientName, GrantType, RedirectUris, ScopeName, Scopes};
use crate::routes::page::CsrfProtected;
use crate::routes::step_up;

#[derive(Debug, Default, Deserialize, Validate)]
pub struct AppForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    #[validate(length(
        max = 500,
        message = "Description must be at most 500 characters long."
    ))]
    pub description: String,
    #[serde(default)]
    #[validate(length(max = 2000))]
    pub home_page_url: String,
    #[serde(default)]
    #[validate(length(max = 2000))]
    pub logo_url: String,
    #[serde(default)]
    #[validate(length(max = 2000))]
    pub privacy_policy_url: String,
    /// One per line.
    #[serde(default)]
    pub redirect_uris: String,
    /// `sandbox` or `live`.
    #[serde(default)]
    pub environment: String,
    /// `confidential` or `public` (creation only).
    #[serde(default)]
    pub client_type: String,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Checkboxes (edit only): present when ticked.
    #[serde(default)]
    pub require_par: Option<String>,
    #[serde(default)]
    pub dpop_bound: Option<String>,
    #[serde(default)]
    pub fapi2: Option<String>,
    /// Ticked to confirm tightening a live application's security ([`check_security`]).
    #[serde(default)]
    pub confirm_security: Option<String>,
    /// Sent by the page that says what going live means ([`super::lifecycle::confirm_live`]).
    #[serde(default)]
    pub confirm_live: Option<String>,
    /// That page's step-up: [`step_up::Given`]'s fields, spelt out because serde cannot
    /// flatten a struct into a form that has repeated fields (`grant_types`, `scopes`).
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub passkey: Option<String>,
    #[serde(default)]
    pub csrf_token: String,
}

impl AppForm {
    /// The security checkboxes as the client's settings.
    pub fn security(&self) -> Security {
        Security {
            require_par: self.require_par.is_some(),
            dpop_bound: self.dpop_bound.is_some(),
            fapi2: self.fapi2.is_some(),
        }
    }

    /// What the confirmation page's step-up sent.
    pub fn given(&self) -> step_up::Given {
        step_up::Given {
            password: self.password.clone(),
            passkey: self.passkey.clone(),
        }
    }

    /// The form as the page that confirms going live carries it along, marked as confirmed.
    pub fn hidden(&self) -> step_up::Hidden {
        let mut hidden: step_up::Hidden = vec![
            ("name", self.name.clone()),
            ("description", self.description.clone()),
            ("home_page_url", self.home_page_url.clone()),
            ("logo_url", self.logo_url.clone()),
            ("privacy_policy_url", self.privacy_policy_url.clone()),
            ("redirect_uris", self.redirect_uris.clone()),
            ("environment", self.environment.clone()),
            ("client_type", self.client_type.clone()),
        ];
        hidden.extend(self.grant_types.iter().map(|g| ("grant_types", g.clone())));
        hidden.extend(self.scopes.iter().map(|s| ("scopes", s.clone())));
        let ticked = [
            ("require_par", &self.require_par),
            ("dpop_bound", &self.dpop_bound),
            ("fapi2", &self.fapi2),
            ("confirm_security", &self.confirm_security),
        ];
        for (name, value) in ticked {
            if let Some(value) = value {
                hidden.push((name, value.clone()));
            }
        }
        hidden.push(("confirm_live", "on".to_owned()));
        hidden
    }
}

/// The security settings' rules on the edit form, beside the other fields' errors: FAPI 2.0
/// needs a key-based application without the password grant (`clients::check_security` says
/// the same to every caller), and making a live application stricter breaks every integration
/// that does not meet the new rule at once, so it needs the box ticked that says so.
pub fn check_security(form: &AppForm, client: &Client, errors: &mut Errors) {
    let wanted = form.security();
    if wanted.fapi2 && client.jwks.is_none() {
        errors.insert(
            "fapi2",
            "FAPI 2.0 needs public keys: switch the application to private_key_jwt on its Keys page first.".to_owned(),
        );
    } else if wanted.fapi2 && form.grant_types.iter().any(|g| g == "password") {
        errors.insert(
            "fapi2",
            "FAPI 2.0 does not allow the password grant: untick it above.".to_owned(),
        );
    }
    let now = client.security();
    let stricter = (wanted.require_par && !now.require_par)
        || (wanted.dpop_bound && !now.dpop_bound)
        || (wanted.fapi2 && !now.fapi2);
    if client.is_live && stricter && form.confirm_security.is_none() {
        errors.insert(
            "confirm_security",
            "This application is live: tick the box to confirm that its requests which do not meet the new settings will fail.".to_owned(),
        );
    }
}

impl CsrfProtected for AppForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// Beside Environment when an account without a second factor would make an application live
/// (`LATCHKEY_REQUIRE_MFA_FOR_LIVE`); the form then links to the Security page.
pub const LIVE_NEEDS_FACTOR: &str = "Live applications need two-step sign-in on your account, since their secrets move real money. Set it up on your Security page, then come back.";

/// A form that passed every check.
pub struct Checked {
    pub name: ClientName,
    pub details: ClientDetails,
    pub redirect_uris: RedirectUris,
    pub live: bool,
    pub confidential: bool,
    pub grant_types: Vec<GrantType>,
    pub scopes: Scopes,
}

pub type Errors = HashMap<&'static str, String>;

/// Checks every field, collecting one message per wrong field.
pub fn check(
    form: &AppForm,
    registered: &[Scope],
    email_verified: bool,
) -> Result<Checked, Errors> {
    let mut errors = Errors::new();
    if let Err(e) = form.validate() {
        for (field, problems) in e.field_errors() {
            let message = problems
                .first()
                .and_then(|p| p.message.as_ref().map(|m| m.to_string()))
                .unwrap_or_else(|| "This value is too long.".to_owned());
            errors.insert(field_key(&field), message);
        }
    }
    let name = ClientName::parse(&form.name)
        .map_err(|e| errors.insert("name", format!("Application name {e}.")))
        .ok();
    let mut url = |field: &'static str, label: &str, raw: &str| -> Option<String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return None;
        }
        match url::Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                Some(raw.to_owned())
            }
            _ => {
                errors.entry(field).or_insert(format!(
                    "{label} must be a full web address starting with https://."
                ));
                None
            }
        }
    };
    let home_page_url = url("home_page_url", "Home page URL", &form.home_page_url);
    let logo_url = url("logo_url", "Logo URL", &form.logo_url);
    let privacy_policy_url = url(
        "privacy_policy_url",
        "Privacy policy URL",
        &form.privacy_policy_url,
    );

    let live = match form.environment.as_str() {
        "live" => true,
        "sandbox" | "" => false,
        _ => {
            errors.insert("environment", "Choose Sandbox or Live.".to_owned());
            false
        }
    };
    if live && !email_verified {
        errors.insert(
            "environment",
            "Confirm your email address before switching an application to live.".to_owned(),
        );
    }
    let confidential = match form.client_type.as_str() {
        "public" => false,
        "confidential" | "" => true,
        _ => {
            errors.insert("client_type", "Choose Confidential or Public.".to_owned());
            true
        }
    };
    let redirect_uris = RedirectUris::parse(form.redirect_uris.lines(), live)
        .map_err(|e| errors.insert("redirect_uris", format!("Redirect URI {e}.")))
        .ok();

    let mut grant_types = Vec::new();
    for raw in &form.grant_types {
        match raw.parse::<GrantType>() {
            Ok(g) if !grant_types.contains(&g) => grant_types.push(g),
            Ok(_) => {}
            Err(e) => {
                errors.insert("grant_types", format!("{e}."));
            }
        }
    }
    grant_types.sort();
    if grant_types.is_empty() {
        errors
            .entry("grant_types")
            .or_insert("Choose at least one grant type.".to_owned());
    }
    if !confidential && grant_types.contains(&GrantType::ClientCredentials) {
        errors.insert(
            "grant_types",
            "A public application has no secret, so it cannot use client credentials.".to_owned(),
        );
    }
    if grant_types.contains(&GrantType::AuthorizationCode)
        && redirect_uris.as_ref().is_some_and(RedirectUris::is_empty)
    {
        errors
            .entry("redirect_uris")
            .or_insert("The authorization code grant needs at least one redirect URI.".to_owned());
    }

    let mut scopes = Vec::new();
    for raw in &form.scopes {
        match ScopeName::parse(raw) {
            Ok(s) if registered.iter().any(|r| r.name == s.as_str()) => scopes.push(s),
            _ => {
                errors.insert("scopes", format!("“{raw}” is not a scope of this server."));
            }
        }
    }

    let scopes = match Scopes::for_client(scopes) {
        Ok(scopes) => scopes,
        Err(e) => {
            errors.insert("scopes", format!("Scopes {e}."));
            Scopes::default()
        }
    };

    match (name, redirect_uris) {
        (Some(name), Some(redirect_uris)) if errors.is_empty() => Ok(Checked {
            name,
            details: ClientDetails {
                description: form.description.trim().to_owned(),
                home_page_url,
                logo_url,
                privacy_policy_url,
            },
            redirect_uris,
            live,
            confidential,
            grant_types,
            scopes,
        }),
        _ => Err(errors),
    }
}

fn field_key(field: &str) -> &'static str {
    match field {
        "description" => "description",
        "home_page_url" => "home_page_url",
        "logo_url" => "logo_url",
        _ => "privacy_policy_url",
    }
}

/// The form's values for a new application.
pub fn blank() -> AppForm {
    AppForm {
        environment: "sandbox".into(),
        client_type: "confidential".into(),
        grant_types: GrantType::confidential_defaults()
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect(),
        ..AppForm::default()
    }
}

/// The form's values for an existing application.
pub fn from_client(client: &Client) -> AppForm {
    AppForm {
        name: client.name.clone(),
        description: client.description.clone(),
        home_page_url: client.home_page_url.clone().unwrap_or_default(),
        logo_url: client.logo_url.clone().unwrap_or_default(),
        privacy_policy_url: client.privacy_policy_url.clone().unwrap_or_default(),
        redirect_uris: client
            .redirect_uris()
            .iter()
            .map(|u| u.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        environment: client.environment().to_owned(),
        client_type: if client.is_confidential {
            "confidential"
        } else {
            "public"
        }
        .to_owned(),
        grant_types: client
            .allowed_grant_types()
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect(),
        scopes: client
            .allowed_scopes()
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        require_par: client.require_par.then(|| "on".to_owned()),
        dpop_bound: client.dpop_bound.then(|| "on".to_owned()),
        fapi2: client.fapi2.then(|| "on".to_owned()),
        ..AppForm::default()
    }
}

/// Template context for the form.
pub fn context(
    form: &AppForm,
    errors: &Errors,
    registered: &[Scope],
    editing: Option<&Client>,
) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert(
        "values",
        &serde_json::json!({
            "name": form.name,
            "description": form.description,
            "home_page_url": form.home_page_url,
            "logo_url": form.logo_url,
            "privacy_policy_url": form.privacy_policy_url,
            "redirect_uris": form.redirect_uris,
            "environment": if form.environment == "live" { "live" } else { "sandbox" },
            "client_type": if form.client_type == "public" { "public" } else { "confidential" },
            "grant_types": form.grant_types,
            "scopes": form.scopes,
            "require_par": form.require_par.is_some(),
            "dpop_bound": form.dpop_bound.is_some(),
            "fapi2": form.fapi2.is_some(),
        }),
    );
    ctx.insert(
        "needs_factor",
        &errors
            .get("environment")
            .is_some_and(|e| e == LIVE_NEEDS_FACTOR),
    );
    // The application as it is stored (its name in the breadcrumb, even while the form's
    // name field holds an error).
    if let Some(client) = editing {
        ctx.insert(
            "editing_app",
            &serde_json::json!({ "client_id": client.client_id, "name": client.name }),
        );
    }
    ctx.insert("key_based", &editing.is_some_and(|c| c.jwks.is_some()));
    ctx.insert("live_app", &editing.is_some_and(|c| c.is_live));
    ctx.insert("errors", errors);
    let grants: Vec<_> = GrantType::ALL
        .iter()
        .map(|g| {
            let (label, hint) = match g {
                GrantType::AuthorizationCode => ("Authorization code", "People sign in and approve your app; you get a code for tokens. Needs a redirect URI."),
                GrantType::ClientCredentials => ("Client credentials", "Your server acts as your own merchant account."),
                GrantType::Password => ("Password", "Your app collects people's passwords itself. Only for apps you fully trust: it sees their password."),
                GrantType::RefreshToken => ("Refresh token", "Renew access tokens without asking again."),
            };
            serde_json::json!({ "value": g.as_str(), "label": label, "hint": hint })
        })
        .collect();
    ctx.insert("grant_choices", &grants);
    let scopes: Vec<_> = registered
        .iter()
        .map(|s| serde_json::json!({ "name": s.name, "description": s.description }))
        .collect();
    ctx.insert("scope_choices", &scopes);
    ctx.insert("editing", &editing.map(|c| c.client_id.clone()));
    ctx
}

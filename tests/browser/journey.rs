//! The journey, as people live it: a merchant registers an application in the portal, and an
//! end user signs in to that application through Latchkey, then takes the access back.
//!
//! Run four times (desktop and phone, JavaScript on and off), one at a time: each run is a
//! browser, and the machine may have two cores.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fantoccini::key::Key;
use serde_json::Value;

use crate::a11y;
use crate::browser::{Browser, ONE_AT_A_TIME, Width, tools_or_skip};
use crate::callback::{CHALLENGE, CallbackServer};
use crate::helpers::{
    MERCHANT_PASSWORD, TestApp, TestClient, hex_id, link_in, spawn_app_on_localhost,
};

const END_USER: &str = "shopper";
const END_USER_PASSWORD: &str = "shopper's long password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_at_desktop_width() {
    run("journey_at_desktop_width", Width::Desktop, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_at_phone_width() {
    run("journey_at_phone_width", Width::Phone, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_at_desktop_width_without_javascript() {
    run(
        "journey_at_desktop_width_without_javascript",
        Width::Desktop,
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_at_phone_width_without_javascript() {
    run(
        "journey_at_phone_width_without_javascript",
        Width::Phone,
        false,
    )
    .await;
}

/// Starts a server and a browser, walks the journey, and always ends the browser (also when an
/// assertion fails, so that no Chromium is left behind).
async fn run(test: &str, width: Width, js: bool) {
    let Some(tools) = tools_or_skip(test) else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    // Reached by a domain name (localhost), where browsers allow passkeys.
    let app = Arc::new(spawn_app_on_localhost().await);
    let browser = Arc::new(Browser::launch(&tools, width, js).await);
    let outcome = tokio::spawn({
        let (app, browser) = (app.clone(), browser.clone());
        async move { Journey::new(&app, &browser).walk().await }
    })
    .await;
    let log = browser.log_tail();
    if outcome.is_err() {
        let file = format!("target/screenshots/FAILED-{}.png", browser.label());
        let saved = browser
            .try_screenshot(&Path::new(env!("CARGO_MANIFEST_DIR")).join(&file))
            .await;
        crate::browser::say(&match saved {
            Ok(()) => format!("{test}: the page when it failed is in {file}"),
            Err(e) => format!("{test}: no screenshot of the failure: {e}"),
        });
    }
    if let Ok(browser) = Arc::try_unwrap(browser) {
        browser.quit().await;
    }
    if let Err(e) = outcome {
        if e.is_panic() {
            crate::browser::say(&format!("chromedriver log:\n{log}"));
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("{test}: {e}");
    }
}

struct Journey<'a> {
    app: &'a TestApp,
    b: &'a Browser,
    shots: PathBuf,
    step: usize,
}

impl<'a> Journey<'a> {
    fn new(app: &'a TestApp, b: &'a Browser) -> Self {
        let mut shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        if !b.js {
            shots.push("no-js");
        }
        Journey {
            app,
            b,
            shots,
            step: 0,
        }
    }

    /// On every Latchkey page of the journey: a screenshot, then the accessibility checks
    /// (axe-core in the light and the dark colour scheme, labels, the Tab key).
    async fn page(&mut self, name: &str) {
        self.shot(name).await;
        a11y::page(self.b, name).await;
    }

    async fn shot(&mut self, name: &str) {
        self.step += 1;
        let file = format!("{:02}-{name}-{}.png", self.step, self.b.width.name());
        self.b.screenshot(&self.shots.join(file)).await;
    }

    async fn walk(mut self) {
        // A fresh server: the home page tells the operator what to do first.
        self.b.goto(&self.app.url("/")).await;
        self.b
            .wait_for("#first-steps h1", Some("Latchkey is running"))
            .await;
        self.page("home-first-steps").await;
        let callback = CallbackServer::start(&self.app.address);
        let client = self.merchant_registers_an_application(&callback).await;
        callback.configure(&client.client_id, &client.secret);
        self.end_user_authorizes_and_revokes(&client, &callback)
            .await;
        self.a_moved_address_is_put_back().await;
        callback.stop().await;
    }

    async fn merchant_registers_an_application(&mut self, callback: &CallbackServer) -> TestClient {
        let (app, b) = (self.app, self.b);

        // Sign up: the address first, then the link from the message.
        b.goto(&app.url("/signup")).await;
        self.page("sign-up").await;
        b.fill("Email address", "acme@example.com").await;
        b.click("Continue").await;
        b.wait_for("h1", Some("Check your inbox")).await;
        assert!(
            b.text("#sent").await.contains("acme@example.com"),
            "the page names the address"
        );
        self.page("sign-up-sent").await;
        let email = app.mail_to("acme@example.com", 0).await;
        assert_eq!(email.subject, "Finish creating your Latchkey account");
        b.goto(&link_in(&email.text, "/signup/")).await;
        b.wait_for("h1", Some("Finish creating your account")).await;
        assert_eq!(b.text("#signup-email").await, "acme@example.com");
        self.page("sign-up-finish").await;
        b.fill("Username", "acme").await;
        b.fill("Display name", "Acme Sdn Bhd").await;
        b.fill("Password", MERCHANT_PASSWORD).await;
        b.click("Create account").await;
        b.wait_for_path("/developer/applications").await;
        assert!(
            b.text(".flash").await.contains("Welcome"),
            "{}",
            b.text("main").await
        );
        assert!(!b.has(".banner").await, "the link confirmed the address");
        assert_eq!(b.text(".empty h2").await, "Register your first application");
        self.page("applications-empty").await;

        // Sign out and back in.
        b.click("Sign out").await;
        b.wait_for_path("/login").await;
        b.fill("Username", "acme").await;
        b.fill("Password", MERCHANT_PASSWORD).await;
        b.click("Sign in").await;
        b.wait_for_path("/developer/applications").await;

        // A new application, with a mistake corrected on the way.
        b.click("New application").await;
        b.wait_for_path("/developer/applications/new").await;
        self.page("new-application").await;
        b.fill("Application name", "Acme Shop").await;
        b.fill("Description", "Our online shop").await;
        b.fill("Home page URL", "shop.example.com").await;
        b.fill("Privacy policy URL", "https://shop.example.com/privacy")
            .await;
        b.fill("Redirect URIs", &callback.redirect_uri).await;
        for id in ["grant-authorization_code", "grant-refresh_token"] {
            assert!(
                b.find(&format!("#{id}")).await.is_selected().await.unwrap(),
                "{id} is ticked by default"
            );
        }
        for name in ["get_user_profile", "manage_payment"] {
            let scope = b.find(&format!("#scope-{name}")).await;
            if !scope.is_selected().await.unwrap() {
                b.toggle(&format!("scope-{name}")).await;
            }
            assert!(scope.is_selected().await.unwrap());
        }
        b.click("Create application").await;
        b.wait_for("#home_page_url-error", None).await;
        assert!(
            b.text("#home_page_url-error").await.contains("https://"),
            "the error says what is wrong"
        );
        assert!(b.text(".alert.error").await.contains("Please correct"));
        assert_eq!(b.value("#name").await, "Acme Shop", "the input is kept");
        self.page("new-application-errors").await;
        b.fill("Home page URL", "https://shop.example.com").await;
        b.click("Create application").await;
        b.wait_for_path("/developer/applications/").await;

        // Copy the client_id and the secret shown once, from the read-only fields.
        let client_id = b.field("Client ID").await.prop("value").await.unwrap();
        let client_id = client_id.unwrap_or_default();
        let secret = b
            .field("Client secret")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(secret.starts_with("lks_"), "the secret is shown: {secret}");
        assert!(
            b.path().await.ends_with(&client_id),
            "the page is the application's"
        );
        self.copy_buttons_are_an_enhancement(&secret).await;
        self.page("application-created").await;
        assert_eq!(token_status(app, &client_id, &secret).await, 200);

        // View the secret again: the password first.
        b.click("View").await;
        b.wait_for_path(&format!("/developer/applications/{client_id}/secret"))
            .await;
        b.wait_for("h1", Some("Confirm it is you")).await;
        self.page("confirm-password").await;
        b.fill("Password", MERCHANT_PASSWORD).await;
        b.click("Confirm").await;
        b.wait_for("h1", Some("Secret of Acme Shop")).await;
        let again = b
            .field("Client secret")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default();
        assert_eq!(again, secret, "the same secret is shown again");
        self.page("secret-viewed-again").await;
        assert!(
            app.outbox
                .messages()
                .iter()
                .any(|m| m.to == "acme@example.com" && m.text.contains("was revealed")),
            "the owner is told the secret was viewed"
        );

        // Rotate it, the old one stopping at once.
        b.click("Back to Acme Shop").await;
        b.wait_for_path(&format!("/developer/applications/{client_id}"))
            .await;
        b.choose(
            "When you rotate, the current secret keeps working for",
            "now",
        )
        .await;
        b.click("Rotate secret").await;
        b.wait_for(".flash", None).await;
        assert!(b.text(".flash").await.contains("old one stopped working"));
        let rotated = b
            .field("Client secret")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(rotated.starts_with("lks_") && rotated != secret);
        self.page("secret-rotated").await;
        assert_eq!(token_status(app, &client_id, &secret).await, 401);
        assert_eq!(token_status(app, &client_id, &rotated).await, 200);

        self.merchant_switches_an_application_to_keys().await;
        self.merchant_turns_on_two_step_sign_in(&client_id, &rotated)
            .await;
        self.merchant_confirms_what_reaches_customers(&client_id)
            .await;
        self.merchant_reads_the_activity(&client_id).await;

        b.click("Sign out").await;
        b.wait_for_path("/login").await;
        TestClient {
            client_id,
            secret: rotated,
            owner_id: 0,
        }
    }

    /// A second application of the merchant's (registered with the CLI) moves to
    /// private_key_jwt on its keys page: the switch refused until its box is ticked (the
    /// pasted keys kept), then made (within the re-authentication window the secret views
    /// opened); it then turns FAPI 2.0 on in its settings, and its key is removed after the
    /// page that says what that breaks.
    async fn merchant_switches_an_application_to_keys(&mut self) {
        let (app, b) = (self.app, self.b);
        let created = app.create_client("acme", &["--grant-type", "client_credentials"]);
        let id = created["client_id"].as_str().unwrap().to_owned();
        let secret = created["client_secret"].as_str().unwrap().to_owned();
        b.goto(&app.url(&format!("/developer/applications/{id}")))
            .await;
        b.click("Use private_key_jwt with your own keys instead")
            .await;
        b.wait_for("h1", Some("Public keys")).await;
        self.page("keys-secret-based").await;
        let key = crate::helpers::SigningKey::p256("acme-2026");
        let document = serde_json::json!({ "keys": [key.jwk] }).to_string();
        b.fill("Public keys (JWKS)", &document).await;
        b.click("Switch to private_key_jwt").await;
        b.wait_for("#confirm_switch-error", None).await;
        assert!(
            b.value("#jwks").await.contains("acme-2026"),
            "the keys are kept"
        );
        self.page("keys-switch-unconfirmed").await;
        b.toggle("confirm_switch").await;
        b.click("Switch to private_key_jwt").await;
        b.wait_for(".flash", None).await;
        assert!(
            b.text(".flash")
                .await
                .contains("now authenticates with private_key_jwt"),
            "{}",
            b.text("main").await
        );
        self.page("keys-registered").await;
        assert_eq!(token_status(app, &id, &secret).await, 401);

        // With keys, the edit form's FAPI 2.0 switch may be turned on.
        b.goto(&app.url(&format!("/developer/applications/{id}/edit")))
            .await;
        b.wait_for("#security", None).await;
        self.page("edit-security").await;
        b.toggle("fapi2").await;
        b.click("Save changes").await;
        b.wait_for(".flash", None).await;
        assert!(
            b.text("main").await.contains("FAPI 2.0"),
            "{}",
            b.text("main").await
        );
        self.page("fapi2-on").await;
        b.goto(&app.url(&format!("/developer/applications/{id}/keys")))
            .await;
        b.wait_for("h1", Some("Public keys")).await;

        b.click("Remove").await;
        b.wait_for("h1", Some("Remove the key “acme-2026”?")).await;
        self.page("key-remove").await;
        b.click("Remove the key").await;
        b.wait_for(".flash", None).await;
        assert!(b.text(".flash").await.contains("removed"));
        assert!(b.text("main").await.contains("no key left"));
        self.page("keys-none-left").await;
    }

    /// The merchant adds an authenticator app on the Security page (this test is the app: it
    /// computes the codes from the key the page shows), saves the recovery codes, signs out and
    /// back in with a code, and views the secret again after a step-up with a recovery code
    /// (the app's current code was spent signing in).
    async fn merchant_turns_on_two_step_sign_in(&mut self, client_id: &str, secret: &str) {
        let (app, b) = (self.app, self.b);
        b.click("Security").await;
        b.wait_for_path("/account/security").await;
        self.page("security-off").await;
        b.click("Set up an authenticator app").await;
        b.wait_for("h1", Some("Set up an authenticator app")).await;
        let key = b.value("#totp-secret").await;
        self.page("totp-setup").await;
        b.fill("Code from the app", "000000").await;
        b.click("Turn on two-step sign-in").await;
        b.wait_for("#code-error", None).await;
        assert_eq!(b.value("#totp-secret").await, key, "the same key");
        self.page("totp-setup-wrong-code").await;
        let t0 = chrono::Utc::now().timestamp();
        b.fill("Code from the app", &totp_code(&key, t0, 0)).await;
        // The password, unless it was given in the last 10 minutes (the secret view above).
        if b.has("#password").await {
            b.fill("Your password", MERCHANT_PASSWORD).await;
        }
        b.click("Turn on two-step sign-in").await;
        b.wait_for("h1", Some("Two-step sign-in is on")).await;
        let codes = b.text("#recovery-codes").await;
        let codes: Vec<&str> = codes.split_whitespace().collect();
        assert_eq!(codes.len(), 10, "{codes:?}");
        let recovery = codes[0].to_owned();
        self.page("recovery-codes").await;
        b.click("I have saved them").await;
        b.wait_for_path("/account/security").await;
        assert!(b.text("main").await.contains("10 of 10 left"));
        self.page("security-on").await;

        b.click("Sign out").await;
        b.wait_for_path("/login").await;
        b.fill("Username", "acme").await;
        b.fill("Password", MERCHANT_PASSWORD).await;
        b.click("Sign in").await;
        b.wait_for_path("/login/verify").await;
        self.page("sign-in-code").await;
        b.fill("Authentication code", &totp_code(&key, t0, 1)).await;
        b.click("Verify and sign in").await;
        b.wait_for_path("/developer/applications").await;
        if b.js {
            self.merchant_adds_a_passkey_and_signs_in_with_it().await;
        }
        self.removing_a_factor_says_what_it_changes().await;

        // Ten minutes on, viewing the secret asks for the second factor again: the passkey
        // (with JavaScript), or a recovery code (the app's current code was spent signing in).
        app.close_step_up_windows();
        b.goto(&app.url(&format!("/developer/applications/{client_id}")))
            .await;
        b.click("View").await;
        b.wait_for("h1", Some("Confirm it is you")).await;
        self.page("confirm-code").await;
        if b.js {
            b.click("Use a passkey").await;
        } else {
            b.fill("Authentication code", &recovery).await;
            b.click("Confirm").await;
        }
        b.wait_for("h1", Some("Secret of Acme Shop")).await;
        let shown = b
            .field("Client secret")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default();
        assert_eq!(shown, secret, "the secret, after the second factor");
        b.click("Back to Acme Shop").await;
        b.wait_for_path(&format!("/developer/applications/{client_id}"))
            .await;
    }

    /// The pages that remove a factor say what that changes, and Cancel leaves it; with the
    /// step-up window closed, the account page asks for the factor before the address or the
    /// password can change.
    async fn removing_a_factor_says_what_it_changes(&mut self) {
        let (app, b) = (self.app, self.b);
        b.goto(&app.url("/account/security")).await;
        b.click("Remove the authenticator app").await;
        b.wait_for("h1", Some("Remove the authenticator app?"))
            .await;
        self.page("totp-remove").await;
        b.click("Cancel").await;
        b.wait_for_path("/account/security").await;
        if b.js {
            b.click("Remove").await;
            b.wait_for("h1", Some("Remove the passkey “This laptop”?"))
                .await;
            self.page("passkey-remove").await;
            b.click("Cancel").await;
            b.wait_for_path("/account/security").await;
        }
        app.close_step_up_windows();
        b.goto(&app.url("/account")).await;
        b.wait_for("h1", Some("Account")).await;
        assert!(b.text("main").await.contains("Confirm it is you"));
        self.page("account-needs-factor").await;
        b.click("Confirm it is you").await;
        b.wait_for("h1", Some("Confirm it is you")).await;
        self.page("account-confirm").await;
        b.click("Cancel").await;
        b.wait_for_path("/account").await;
    }

    /// With JavaScript: the browser gets a virtual authenticator (WebDriver's WebAuthn
    /// extension); the merchant adds a passkey on the Security page, signs out, and signs in
    /// with the password and the passkey.
    async fn merchant_adds_a_passkey_and_signs_in_with_it(&mut self) {
        let (app, b) = (self.app, self.b);
        b.add_virtual_authenticator().await;
        b.goto(&app.url("/account/security")).await;
        b.click("Add a passkey").await;
        b.wait_for("h1", Some("Add a passkey")).await;
        self.page("passkey-add").await;
        b.fill("Name", "This laptop").await;
        b.click("Create passkey").await;
        b.wait_for(".flash", None).await;
        assert!(
            b.text(".flash")
                .await
                .contains("Passkey “This laptop” was added"),
            "{}",
            b.text("main").await
        );
        assert!(b.text(".passkeys").await.contains("This laptop"));
        // Times in the browser's time zone, with how long ago; UTC in the tooltip.
        let seen = b.find("table time").await;
        let shown = seen.text().await.unwrap();
        assert!(!shown.contains("UTC") && shown.contains('('), "{shown}");
        assert!(
            seen.attr("title")
                .await
                .unwrap()
                .unwrap_or_default()
                .ends_with("UTC"),
            "the UTC time stays as the tooltip"
        );
        self.page("security-passkey").await;

        b.click("Sign out").await;
        b.wait_for_path("/login").await;
        b.fill("Username", "acme").await;
        b.fill("Password", MERCHANT_PASSWORD).await;
        b.click("Sign in").await;
        b.wait_for_path("/login/verify").await;
        self.page("sign-in-passkey").await;
        b.click("Use a passkey").await;
        b.wait_for_path("/developer/applications").await;
    }

    /// Disabling, deleting and going live each say first what they do; the step-up above opened
    /// the window, so the pages ask for nothing more. The application is disabled and enabled
    /// again (one click), deleting is cancelled, and it goes live.
    async fn merchant_confirms_what_reaches_customers(&mut self, client_id: &str) {
        let b = self.b;
        let show = format!("/developer/applications/{client_id}");
        b.click("Disable…").await;
        b.wait_for("h1", Some("Disable “Acme Shop”?")).await;
        assert!(b.text("main").await.contains("invalid_client"));
        self.page("disable-confirm").await;
        b.click("Disable the application").await;
        b.wait_for(
            ".flash",
            Some("Application disabled: it gets invalid_client everywhere until you enable it."),
        )
        .await;
        b.click("Enable").await;
        b.wait_for(
            ".flash",
            Some("Application enabled: it can get tokens again."),
        )
        .await;

        b.click("Delete…").await;
        b.wait_for("h1", Some("Delete “Acme Shop”?")).await;
        self.page("delete-confirm").await;
        b.click("Cancel").await;
        b.wait_for("h1", Some("Acme Shop")).await;
        assert_eq!(b.path().await, show);

        b.click("Edit settings").await;
        b.wait_for("h1", Some("Edit Acme Shop")).await;
        b.pick("env-live").await;
        b.click("Save changes").await;
        b.wait_for("h1", Some("Take “Acme Shop” live?")).await;
        assert!(b.text("main").await.contains("real money"));
        self.page("go-live-confirm").await;
        b.click("Go live").await;
        b.wait_for(".flash", Some("Your changes were saved.")).await;
        assert_eq!(b.text(".badge.live").await, "Live");
    }

    /// With JavaScript the copy buttons appear and copy; without it they stay hidden and the
    /// values are in read-only fields, to select and copy by hand.
    async fn copy_buttons_are_an_enhancement(&self, secret: &str) {
        let b = self.b;
        let button = b.find("button.copy[data-copy=client-secret]").await;
        let field = b.field("Client secret").await;
        assert_eq!(
            field.attr("readonly").await.unwrap().as_deref(),
            Some("true")
        );
        if !b.js {
            assert!(
                !button.is_displayed().await.unwrap(),
                "JavaScript is off, so the script that shows the copy buttons did not run"
            );
            return;
        }
        assert!(button.is_displayed().await.unwrap(), "copy.js ran");
        let origin = b.client.current_url().await.unwrap().origin();
        b.cdp(
            "Browser.grantPermissions",
            serde_json::json!({
                "origin": origin.ascii_serialization(),
                "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]
            }),
        )
        .await;
        button.click().await.unwrap();
        let mut tries = 0;
        while button.text().await.unwrap() != "Copied" {
            tries += 1;
            assert!(tries < 40, "the copy button did not say Copied");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let pasted = b
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; navigator.clipboard.readText().then(done, (e) => done('error: ' + e));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            pasted.as_str(),
            Some(secret),
            "the button copied the secret"
        );
        // The label comes back, so the screenshot shows the page as it rests.
        while button.text().await.unwrap() != "Copy" {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The activity page: token requests per day (issued and failed) and the audit log, whose
    /// filters say what is wrong beside the field.
    async fn merchant_reads_the_activity(&mut self, client_id: &str) {
        let (app, b) = (self.app, self.b);
        // A request with a wrong secret, for the failures table.
        assert_eq!(token_status(app, client_id, "lks_wrong").await, 401);
        let activity = app.url(&format!("/developer/applications/{client_id}/activity"));
        b.goto(&activity).await;
        b.wait_for("#failures table", None).await;
        assert!(
            b.text("#failures table")
                .await
                .contains("the client secret does not match any active secret")
        );
        assert!(b.text("#log table").await.contains("created"));
        self.page("activity").await;
        b.goto(&format!("{activity}?from=last+week#log")).await;
        b.wait_for("#from-error", None).await;
        assert_eq!(b.value("#from").await, "last week", "the input is kept");
        self.page("activity-filter-error").await;
    }

    /// The end user uses the keyboard only: Tab, typing, Enter.
    async fn end_user_authorizes_and_revokes(
        &mut self,
        client: &TestClient,
        callback: &CallbackServer,
    ) {
        let (app, b) = (self.app, self.b);
        app.create_user(END_USER, END_USER_PASSWORD);

        let state = hex_id();
        let mut authorize = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
        authorize
            .query_pairs_mut()
            .append_pair("client_id", &client.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &callback.redirect_uri)
            .append_pair("scope", "get_user_profile manage_payment")
            .append_pair("state", &state)
            .append_pair("code_challenge", CHALLENGE)
            .append_pair("code_challenge_method", "S256");
        b.goto(authorize.as_str()).await;
        b.wait_for_path("/login").await;
        assert_eq!(b.text("h1").await, "Sign in to continue to Acme Shop");
        self.page("authorize-sign-in").await;
        b.tab_to("#username").await;
        b.type_text(END_USER).await;
        b.tab_to("#password").await;
        b.type_text(END_USER_PASSWORD).await;
        b.press(Key::Enter).await;
        b.wait_for_path("/oauth/authorize").await;

        b.wait_for("h1", Some("Authorize Acme Shop")).await;
        let asked = b.text(".scopes").await;
        assert!(
            asked.contains("Read your user profile")
                && asked.contains("Take and refund payments for your business"),
            "{asked}"
        );
        assert!(
            b.text("main")
                .await
                .contains("Signed in as Test User (shopper)")
        );
        self.page("consent").await;
        b.reset_focus().await;
        b.tab_to("button[value=allow]").await;
        b.press(Key::Enter).await;

        let mut tries = 0;
        while !b
            .client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&callback.redirect_uri)
        {
            tries += 1;
            assert!(tries < 200, "never reached the application's callback");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(b.text("#who").await, "Signed in as Test User (shopper)");
        self.shot("application-callback").await;
        let visits = callback.visits();
        assert_eq!(visits.len(), 1);
        let visit = &visits[0];
        assert_eq!(visit.query["state"], state);
        assert_eq!(visit.token_status, 200, "{}", visit.tokens);
        assert_eq!(visit.tokens["scope"], "get_user_profile manage_payment");
        assert_eq!(visit.profile["username"], END_USER);

        // The application keeps access: its refresh token works (and rotates).
        let refreshed = refresh(app, client, &visit.tokens["refresh_token"]).await;
        assert_eq!(refreshed.0, 200, "{}", refreshed.1);
        let refresh_token = refreshed.1["refresh_token"].clone();
        let access_token = refreshed.1["access_token"].as_str().unwrap().to_owned();
        assert_eq!(app.profile(&access_token).await.status(), 200);

        // Authorized apps: someone who only uses applications sees no developer pages; one
        // permission is taken back, then the whole access.
        b.goto(&app.url("/account/authorized-apps")).await;
        assert!(!b.text("header").await.contains("Developer"));
        assert!(b.text("section.authorized").await.contains("Acme Shop"));
        assert!(b.text("table").await.contains("Read your user profile"));
        self.page("authorized-apps").await;
        b.reset_focus().await;
        b.tab_to("a[href$='/scopes/manage_payment/revoke']").await;
        b.press(Key::Enter).await;
        b.wait_for(
            "h1",
            Some("Stop Acme Shop from “Take and refund payments for your business”?"),
        )
        .await;
        self.page("revoke-scope-confirm").await;
        b.reset_focus().await;
        b.tab_to("button.danger").await;
        b.press(Key::Enter).await;
        b.wait_for_path("/account/authorized-apps").await;
        b.wait_for(".flash", None).await;
        assert!(!b.text("table").await.contains("Take and refund payments"));
        let kept = refresh(app, client, &refresh_token).await;
        assert_eq!(kept.0, 200, "{}", kept.1);
        assert_eq!(
            kept.1["scope"], "get_user_profile",
            "the next refresh gets what is left"
        );
        let refresh_token = kept.1["refresh_token"].clone();
        let access_token = kept.1["access_token"].as_str().unwrap().to_owned();
        b.reset_focus().await;
        b.tab_to("a[href$='/revoke']").await;
        b.press(Key::Enter).await;
        b.wait_for_path("/account/authorized-apps/").await;
        b.wait_for("h1", Some("Revoke access for Acme Shop?")).await;
        self.page("revoke-confirm").await;
        b.reset_focus().await;
        b.tab_to("button.danger").await;
        b.press(Key::Enter).await;
        b.wait_for(".empty", None).await;
        assert_eq!(b.path().await, "/account/authorized-apps");
        self.page("authorized-apps-revoked").await;

        let after = refresh(app, client, &refresh_token).await;
        assert_eq!(after.0, 400, "{}", after.1);
        assert_eq!(after.1["error"], "invalid_grant");
        assert_eq!(app.profile(&access_token).await.status(), 401);
    }

    /// The shopper gives the account an address, then (as an intruder with the password would)
    /// moves it to another; the first address is told, and its link puts it back and leads to
    /// a new password.
    async fn a_moved_address_is_put_back(&mut self) {
        let (app, b) = (self.app, self.b);
        let (own, other) = ("shopper@example.com", "someone.else@example.com");
        let mut sent = 0;
        for (address, shot) in [(own, None), (other, Some("account-address-change"))] {
            b.goto(&app.url("/account")).await;
            b.wait_for("h1", Some("Account")).await;
            sent = app.outbox.messages().len();
            b.fill("Email address", address).await;
            b.fill("Password", END_USER_PASSWORD).await;
            if let Some(name) = shot {
                self.page(name).await;
            }
            b.click("Save profile").await;
            let saved = format!(
                "Saved. We sent a link to {address}: your address changes when you open it."
            );
            b.wait_for(".flash", Some(&saved)).await;
            let mail = app.mail_to(address, sent).await;
            b.goto(&link_in(&mail.text, "/verify-email/")).await;
            b.wait_for(
                ".flash",
                Some(&format!("Thank you: {address} is confirmed.")),
            )
            .await;
        }
        let notice = app.mail_to(own, sent).await;
        assert!(notice.text.contains(other), "{}", notice.text);
        b.goto(&link_in(&notice.text, "/account/email/undo/")).await;
        b.wait_for("h1", Some("Put your address back")).await;
        self.page("undo-address-change").await;
        b.click(&format!("Put {own} back")).await;
        b.wait_for_path("/password/reset/").await;
        let restored = format!(
            "{own} is the address of {END_USER} again, and every session was signed out. Choose a new password now."
        );
        b.wait_for(".flash", Some(&restored)).await;
        self.page("choose-new-password").await;
        b.fill("New password", "the shopper's new password").await;
        b.fill("Repeat the new password", "the shopper's new password")
            .await;
        b.click("Change password").await;
        b.wait_for_path("/login").await;
        let shopper = latchkey::db::models::User::find_by_username(&mut app.db.connect(), END_USER)
            .unwrap()
            .unwrap();
        assert_eq!(shopper.email.as_deref(), Some(own));
    }
}

async fn token_status(app: &TestApp, client_id: &str, secret: &str) -> u16 {
    let client = TestClient {
        client_id: client_id.to_owned(),
        secret: secret.to_owned(),
        owner_id: 0,
    };
    app.token_form(Some(&client), &[("grant_type", "client_credentials")])
        .await
        .status()
        .as_u16()
}

async fn refresh(app: &TestApp, client: &TestClient, token: &Value) -> (u16, Value) {
    let res = app
        .token_form(
            Some(client),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str().unwrap_or_default()),
            ],
        )
        .await;
    (res.status().as_u16(), res.json().await.unwrap_or_default())
}

/// The code an authenticator app holding `key` (base32) shows `steps` steps after `t0`.
fn totp_code(key: &str, t0: i64, steps: i64) -> String {
    let secret = totp_rs::Secret::Encoded(key.to_owned()).to_bytes().unwrap();
    let totp = totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret,
        None,
        "journey".to_owned(),
    )
    .unwrap();
    totp.generate((t0 + steps * 30) as u64)
}

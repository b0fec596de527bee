//! Passkeys (WebAuthn, by webauthn-rs on the server): a merchant adds passkeys, names and
//! renames them, signs in with one as the second factor, steps up with one, and removes them;
//! a replayed or foreign answer is refused and counts in the lockout. The tests play the
//! authenticator themselves ([`SoftAuthenticator`]: a P-256 key, "none" attestation, the CBOR
//! and signatures WebAuthn specifies), as a browser's virtual authenticator does in the
//! browser journey.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::helpers::{
    Html, MERCHANT_PASSWORD, TestApp, location, spawn_app, spawn_app_on_localhost,
};

/// A passkey held in memory: what a platform authenticator does, reduced to the bytes.
pub struct SoftAuthenticator {
    key: EcdsaKeyPair,
    credential_id: Vec<u8>,
    counter: u32,
    /// The WebAuthn user handle the server gave at registration.
    user_handle: Vec<u8>,
}

/// CBOR (RFC 8949) heads: major type and length.
fn cbor_head(out: &mut Vec<u8>, major: u8, len: usize) {
    let major = major << 5;
    match len {
        0..=23 => out.push(major | len as u8),
        24..=255 => out.extend([major | 24, len as u8]),
        _ => {
            out.push(major | 25);
            out.extend((len as u16).to_be_bytes());
        }
    }
}

fn cbor_text(out: &mut Vec<u8>, text: &str) {
    cbor_head(out, 3, text.len());
    out.extend(text.as_bytes());
}

fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    cbor_head(out, 2, bytes.len());
    out.extend(bytes);
}

/// A CBOR integer in -24..=23.
fn cbor_small_int(out: &mut Vec<u8>, n: i8) {
    if n >= 0 {
        out.push(n as u8);
    } else {
        out.push(0x20 | (-1 - n) as u8);
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).unwrap()
}

impl SoftAuthenticator {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let mut credential_id = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut credential_id).unwrap();
        Self {
            key,
            credential_id,
            counter: 0,
            user_handle: Vec::new(),
        }
    }

    /// The COSE_Key (RFC 9053) of the public key: EC2, ES256, P-256, x, y.
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.public_key().as_ref();
        let mut out = Vec::new();
        cbor_head(&mut out, 5, 5);
        cbor_small_int(&mut out, 1);
        cbor_small_int(&mut out, 2);
        cbor_small_int(&mut out, 3);
        cbor_small_int(&mut out, -7);
        cbor_small_int(&mut out, -1);
        cbor_small_int(&mut out, 1);
        cbor_small_int(&mut out, -2);
        cbor_bytes(&mut out, &point[1..33]);
        cbor_small_int(&mut out, -3);
        cbor_bytes(&mut out, &point[33..65]);
        out
    }

    /// Authenticator data: the relying party's id hash, the flags (user present and
    /// verified, plus `more`), the signature counter, and what follows.
    fn auth_data(&self, rp_id: &str, more: u8, tail: &[u8]) -> Vec<u8> {
        let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
        data.push(0x01 | 0x04 | more);
        data.extend(self.counter.to_be_bytes());
        data.extend(tail);
        data
    }

    fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
        json!({ "type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false })
            .to_string()
            .into_bytes()
    }

    /// Answers `navigator.credentials.create` with these options (the page's JSON), as
    /// `passkey.js` sends it.
    fn create(&mut self, options: &Value, origin: &str) -> String {
        let public_key = &options["publicKey"];
        let rp_id = public_key["rp"]["id"].as_str().unwrap();
        self.user_handle = unb64(public_key["user"]["id"].as_str().unwrap());
        let mut attested = vec![0u8; 16]; // AAGUID: none
        attested.extend((self.credential_id.len() as u16).to_be_bytes());
        attested.extend(&self.credential_id);
        attested.extend(self.cose_key());
        let auth_data = self.auth_data(rp_id, 0x40, &attested);
        let mut attestation = Vec::new();
        cbor_head(&mut attestation, 5, 3);
        cbor_text(&mut attestation, "fmt");
        cbor_text(&mut attestation, "none");
        cbor_text(&mut attestation, "attStmt");
        cbor_head(&mut attestation, 5, 0);
        cbor_text(&mut attestation, "authData");
        cbor_bytes(&mut attestation, &auth_data);
        let client_data = Self::client_data(
            "webauthn.create",
            public_key["challenge"].as_str().unwrap(),
            origin,
        );
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
            },
        })
        .to_string()
    }

    /// Answers `navigator.credentials.get` with these options, signing with the key; the
    /// counter goes up by one.
    fn get(&mut self, options: &Value, origin: &str) -> String {
        let public_key = &options["publicKey"];
        let rp_id = public_key["rpId"].as_str().unwrap();
        let allowed: Vec<Vec<u8>> = public_key["allowCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| unb64(c["id"].as_str().unwrap()))
            .collect();
        assert!(
            allowed.contains(&self.credential_id),
            "the challenge names this passkey"
        );
        self.counter += 1;
        let auth_data = self.auth_data(rp_id, 0, &[]);
        let client_data = Self::client_data(
            "webauthn.get",
            public_key["challenge"].as_str().unwrap(),
            origin,
        );
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature = self
            .key
            .sign(&SystemRandom::new(), &signed)
            .unwrap()
            .as_ref()
            .to_vec();
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(&signature),
                "userHandle": b64(&self.user_handle),
            },
        })
        .to_string()
    }
}

fn origin(app: &TestApp) -> String {
    app.address.clone()
}

/// POSTs `fields` with the CSRF token of a page already fetched (fetching it again would start
/// a new ceremony and void the one being answered).
async fn post(
    app: &TestApp,
    path: &str,
    page: &Html,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = page.csrf();
    let mut all = fields.to_vec();
    all.push(("csrf_token", &csrf));
    app.api.post(app.url(path)).form(&all).send().await.unwrap()
}

fn options(page: &Html, selector: &str, attr: &str) -> Value {
    serde_json::from_str(
        &page
            .attr(selector, attr)
            .expect("no passkey options on the page"),
    )
    .unwrap()
}

/// Adds a passkey named `name` from the add page (the step-up window being open); the
/// answer to the page.
async fn add_passkey(
    app: &TestApp,
    device: &mut SoftAuthenticator,
    name: &str,
) -> reqwest::Response {
    let (status, page) = app.page("/account/security/passkeys/new").await;
    assert_eq!(status, 200, "the add page (the window is open)");
    let answer = device.create(
        &options(&page, "form[data-passkey-create]", "data-passkey-create"),
        &origin(app),
    );
    post(
        app,
        "/account/security/passkeys",
        &page,
        &[("name", name), ("credential", &answer)],
    )
    .await
}

async fn password_step(app: &TestApp) {
    let res = app
        .post_form(
            "/login",
            "/login",
            &[("username", "acme"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login/verify");
}

async fn log_out(app: &TestApp) {
    app.post_form("/logout", "/account", &[]).await;
}

#[tokio::test]
async fn a_passkey_is_added_named_and_signs_in_as_the_second_factor() {
    let app = spawn_app_on_localhost().await;
    assert_eq!(
        app.sign_up("acme", "acme@example.com", MERCHANT_PASSWORD)
            .await
            .status(),
        303
    );
    let (_, page) = app.page("/account/security").await;
    assert!(
        page.attr("a[href='/account/security/passkeys/new']", "href")
            .is_some(),
        "the security page offers passkeys"
    );

    // Adding one needs the password first (the account has no factor yet).
    let (status, page) = app.page("/account/security/passkeys/new").await;
    assert_eq!(status, 200);
    assert!(
        page.attr("input[name=password][type=password]", "name")
            .is_some()
    );
    let res = post(
        &app,
        "/account/security/passkeys",
        &page,
        &[("password", "wrong password")],
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = post(
        &app,
        "/account/security/passkeys",
        &page,
        &[("password", MERCHANT_PASSWORD)],
    )
    .await;
    assert_eq!(res.status(), 200);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.attr("form[data-passkey-create]", "data-passkey-create")
            .is_some()
    );

    // A name is needed; the error is beside the field and nothing is stored.
    let mut laptop = SoftAuthenticator::new();
    let answer = laptop.create(
        &options(&page, "form[data-passkey-create]", "data-passkey-create"),
        &origin(&app),
    );
    let res = post(
        &app,
        "/account/security/passkeys",
        &page,
        &[("name", "  "), ("credential", &answer)],
    )
    .await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("#name-error").is_some());
    assert_eq!(app.count("passkeys"), 0);

    // An answer for another origin (a look-alike site) does not verify.
    let wrong_origin = laptop.create(
        &options(&page, "form[data-passkey-create]", "data-passkey-create"),
        "http://evil.example",
    );
    let res = post(
        &app,
        "/account/security/passkeys",
        &page,
        &[("name", "Laptop"), ("credential", &wrong_origin)],
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(app.count("passkeys"), 0);

    // The first passkey: stored, with ten recovery codes shown once, logged and mailed.
    let res = add_passkey(&app, &mut laptop, "Work laptop").await;
    assert_eq!(res.status(), 200);
    let page = Html::parse(&res.text().await.unwrap());
    let codes: Vec<String> = page
        .text("#recovery-codes")
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(app.count("passkeys"), 1);
    assert_eq!(app.count("recovery_codes"), 10);
    let mail = app.outbox.last_to("acme@example.com").unwrap();
    assert!(mail.text.contains("a passkey was added"), "{}", mail.text);

    // The same authenticator cannot be registered twice; a second one can, and keeps the codes.
    let res = add_passkey(&app, &mut laptop, "Again").await;
    assert_eq!(res.status(), 422);
    let mut key = SoftAuthenticator::new();
    let res = add_passkey(&app, &mut key, "YubiKey").await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.count("passkeys"), 2);
    assert_eq!(app.count("recovery_codes"), 10);
    let (_, page) = app.page("/account/security").await;
    let listed = page.text(".passkeys").unwrap();
    assert!(
        listed.contains("Work laptop") && listed.contains("YubiKey"),
        "{listed}"
    );

    // Renamed.
    let id: i64 = {
        use diesel::prelude::*;
        use latchkey::db::schema::passkeys;
        passkeys::table
            .filter(passkeys::name.eq("YubiKey"))
            .select(passkeys::id)
            .first(&mut app.db.connect())
            .unwrap()
    };
    let path = format!("/account/security/passkeys/{id}/name");
    let res = app
        .post_form(&path, "/account/security", &[("name", "Blue YubiKey")])
        .await;
    assert_eq!(res.status(), 303);
    let (_, page) = app.page("/account/security").await;
    assert!(page.text(".passkeys").unwrap().contains("Blue YubiKey"));

    // Signing in: the password, then the passkey instead of a code.
    log_out(&app).await;
    password_step(&app).await;
    let (status, page) = app.page("/login/verify").await;
    assert_eq!(status, 200);
    let challenge = options(&page, "[data-passkey-get]", "data-passkey-get");
    let answer = laptop.get(&challenge, &origin(&app));
    let res = post(&app, "/login/verify", &page, &[("passkey", &answer)]).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let (status, _) = app.page("/developer/applications").await;
    assert_eq!(status, 200, "signed in");
    let used: Option<chrono::NaiveDateTime> = {
        use diesel::prelude::*;
        use latchkey::db::schema::passkeys;
        passkeys::table
            .filter(passkeys::name.eq("Work laptop"))
            .select(passkeys::last_used_at)
            .first(&mut app.db.connect())
            .unwrap()
    };
    assert!(used.is_some(), "the use is recorded");

    // The same answer again (a replay) is refused: its challenge was used.
    log_out(&app).await;
    password_step(&app).await;
    let (_, page) = app.page("/login/verify").await;
    let res = post(&app, "/login/verify", &page, &[("passkey", &answer)]).await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.text("#code-error").unwrap().contains("passkey"));

    // A recovery code works on the passkey-only account too.
    let res = post(&app, "/login/verify", &page, &[("code", &codes[0])]).await;
    assert_eq!(res.status(), 303);
}

/// Signs `acme` up on a server reached by name, gives the password for the step-up, and adds
/// a passkey named "Laptop"; the passkey and its row id.
async fn acme_with_a_passkey() -> (TestApp, SoftAuthenticator, i64) {
    let app = spawn_app_on_localhost().await;
    app.sign_up("acme", "acme@example.com", MERCHANT_PASSWORD)
        .await;
    let (_, page) = app.page("/account/security/passkeys/new").await;
    let res = post(
        &app,
        "/account/security/passkeys",
        &page,
        &[("password", MERCHANT_PASSWORD)],
    )
    .await;
    assert_eq!(res.status(), 200);
    let mut laptop = SoftAuthenticator::new();
    assert_eq!(add_passkey(&app, &mut laptop, "Laptop").await.status(), 200);
    let id = {
        use diesel::prelude::*;
        use latchkey::db::schema::passkeys;
        passkeys::table
            .select(passkeys::id)
            .first(&mut app.db.connect())
            .unwrap()
    };
    (app, laptop, id)
}

#[tokio::test]
async fn wrong_passkey_answers_count_in_the_lockout() {
    let (app, mut laptop, _) = acme_with_a_passkey().await;
    log_out(&app).await;

    // Another authenticator's answer (a passkey not registered to acme) is refused, each time
    // counted: five lock the account, and then even the right passkey waits.
    password_step(&app).await;
    let mut stranger = SoftAuthenticator::new();
    for _ in 0..5 {
        let (_, page) = app.page("/login/verify").await;
        let mut challenge = options(&page, "[data-passkey-get]", "data-passkey-get");
        challenge["publicKey"]["allowCredentials"] =
            json!([{ "type": "public-key", "id": b64(&stranger.credential_id) }]);
        let answer = stranger.get(&challenge, &origin(&app));
        let res = post(&app, "/login/verify", &page, &[("passkey", &answer)]).await;
        assert_eq!(res.status(), 422);
    }
    let (_, page) = app.page("/login/verify").await;
    let answer = laptop.get(
        &options(&page, "[data-passkey-get]", "data-passkey-get"),
        &origin(&app),
    );
    let res = post(&app, "/login/verify", &page, &[("passkey", &answer)]).await;
    assert_eq!(res.status(), 422);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(
        page.text("#code-error").unwrap().contains("Too many"),
        "locked: {:?}",
        page.text("#code-error")
    );
}

#[tokio::test]
async fn a_passkey_steps_up_and_removing_the_last_one_needs_it() {
    let (app, mut laptop, id) = acme_with_a_passkey().await;

    // The password grant cannot carry a passkey: refused for this account.
    let created = app.create_client("acme", &["--grant-type", "password"]);
    let client = crate::helpers::TestClient {
        client_id: created["client_id"].as_str().unwrap().to_owned(),
        secret: created["client_secret"].as_str().unwrap().to_owned(),
        owner_id: 0,
    };
    let grant = [
        ("grant_type", "password"),
        ("username", "acme"),
        ("password", MERCHANT_PASSWORD),
    ];
    let res = app.token_form(Some(&client), &grant).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // A new session (signed in with the passkey) is inside the window; a stale one is not.
    log_out(&app).await;
    password_step(&app).await;
    let (_, page) = app.page("/login/verify").await;
    let answer = laptop.get(
        &options(&page, "[data-passkey-get]", "data-passkey-get"),
        &origin(&app),
    );
    assert_eq!(
        post(&app, "/login/verify", &page, &[("passkey", &answer)])
            .await
            .status(),
        303
    );
    // Signing in with the passkey opened the step-up window: adding another asks nothing.
    let (_, page) = app.page("/account/security/passkeys/new").await;
    assert!(page.attr("form[data-passkey-create]", "action").is_some());
    // Eleven minutes later it has closed.
    app.close_step_up_windows();

    // Removing the passkey: the confirmation page, then the step-up page offers the passkey
    // (no password field: the password alone is not enough for an account with a factor).
    let remove = format!("/account/security/passkeys/{id}/remove");
    let (status, page) = app.page(&remove).await;
    assert_eq!(status, 200);
    assert!(page.text("main").unwrap().contains("last second factor"));
    let res = app
        .post_form(&remove, &remove, &[("password", MERCHANT_PASSWORD)])
        .await;
    assert_eq!(res.status(), 422, "the password is not a factor");
    assert_eq!(app.count("passkeys"), 1);
    let page = Html::parse(&res.text().await.unwrap());
    assert!(page.attr("input[type=password]", "name").is_none());
    let answer = laptop.get(
        &options(&page, "[data-passkey-get]", "data-passkey-get"),
        &origin(&app),
    );
    let res = post(&app, &remove, &page, &[("passkey", &answer)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.count("passkeys"), 0);
    assert_eq!(
        app.count("recovery_codes"),
        0,
        "the last factor takes the codes"
    );
    let mail = app.outbox.last_to("acme@example.com").unwrap();
    assert!(
        mail.text
            .contains("the passkey “Laptop” and the recovery codes were removed"),
        "{}",
        mail.text
    );

    // Signing in needs the password alone again, and the password grant works again.
    let res = app.token_form(Some(&client), &grant).await;
    assert_eq!(res.status(), 200);
    log_out(&app).await;
    let res = app
        .post_form(
            "/login",
            "/login",
            &[("username", "acme"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_ne!(location(&res), "/login/verify");
}

#[tokio::test]
async fn another_accounts_passkey_is_not_found() {
    let (app, _, id) = acme_with_a_passkey().await;
    log_out(&app).await;
    app.sign_up("other", "other@example.com", MERCHANT_PASSWORD)
        .await;
    let (status, _) = app
        .page(&format!("/account/security/passkeys/{id}/remove"))
        .await;
    assert_eq!(status, 404);
    let res = app
        .post_form(
            &format!("/account/security/passkeys/{id}/name"),
            "/account/security",
            &[("name", "Mine now")],
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .post_form(
            &format!("/account/security/passkeys/{id}/remove"),
            "/account/security",
            &[("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(app.count("passkeys"), 1);
}

#[tokio::test]
async fn on_an_ip_address_issuer_passkeys_are_not_offered() {
    let app = spawn_app().await;
    app.sign_up("acme", "acme@example.com", MERCHANT_PASSWORD)
        .await;
    let (_, page) = app.page("/account/security").await;
    assert!(
        page.attr("a[href='/account/security/passkeys/new']", "href")
            .is_none()
    );
    assert!(page.text("main").unwrap().contains("domain name"));
    let res = app.get("/account/security/passkeys/new").await;
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn the_operators_reset_removes_passkeys_too() {
    let (app, _laptop, _) = acme_with_a_passkey().await;
    assert_eq!(app.count("recovery_codes"), 10);
    let out = app.cli(&["user", "mfa", "reset", "--username", "acme"], "");
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(app.count("passkeys"), 0);
    assert_eq!(app.count("recovery_codes"), 0);
    // Signing in needs the password alone again.
    log_out(&app).await;
    let res = app
        .post_form(
            "/login",
            "/login",
            &[("username", "acme"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_ne!(location(&res), "/login/verify");
    // Nothing left: the second reset says so and changes nothing.
    let again = app.cli(&["user", "mfa", "reset", "--username", "acme"], "");
    assert!(again.success());
    assert!(
        again.stderr.contains("no second factor"),
        "{}",
        again.stderr
    );
}

//! Codes die with the consent: a person who revokes an application under Authorized apps takes
//! back its unredeemed authorization codes too, and the code grant refuses a code whose consent
//! is gone or no longer covers its scope (RFC 6749 §4.1.2: the code is bound to what the
//! person authorized; §10.5).

use diesel::prelude::*;
use latchkey::db::schema::consents;

use super::{Expect, check};
use crate::helpers::{
    CALLBACK, END_USER, END_USER_PASSWORD, authorize_and_allow, authorize_path, location,
    log_in_and_resume, query_of, redeem_at_callback, setup,
};
use crate::helpers::{Html, TestApp, TestClient, spawn_app};

fn pairs(client: &TestClient) -> Vec<(&str, &str)> {
    vec![
        ("client_id", client.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "get_user_profile"),
        ("state", "s"),
    ]
}

/// A code from remembered consent: the request answers at once.
async fn remembered_code(app: &TestApp, client: &TestClient) -> String {
    let res = app.get(&authorize_path(&pairs(client))).await;
    let callback = location(&res);
    assert!(callback.starts_with(CALLBACK), "{callback}");
    query_of(&callback)["code"].clone()
}

fn refused() -> Expect {
    Expect::new(400).error("invalid_grant").no_store()
}

/// Whether the Authorized apps page offers to revoke `client`.
async fn listed(app: &TestApp, client: &TestClient) -> bool {
    let (status, page) = app.page("/account/authorized-apps").await;
    assert_eq!(status, 200);
    page.attr(
        &format!(
            "a[href='/account/authorized-apps/{}/revoke']",
            client.client_id
        ),
        "href",
    )
    .is_some()
}

#[tokio::test]
async fn a_code_issued_before_the_app_was_revoked_gets_nothing() {
    let app = spawn_app().await;
    let client = setup(&app);
    // Another application the same person authorized: revoking the first leaves it alone.
    let other = app.merchant_client(&["--redirect-uri", CALLBACK]);

    let from_consent_page =
        query_of(&authorize_and_allow(&app, &pairs(&client)).await)["code"].clone();
    let from_remembered_consent = remembered_code(&app, &client).await;
    let res = app.get(&authorize_path(&pairs(&other))).await;
    assert_eq!(res.status(), 200, "the other app's consent page");
    let res = crate::helpers::decide(&app, Html::parse(&res.text().await.unwrap()), "allow").await;
    let other_code = query_of(&location(&res))["code"].clone();
    assert!(listed(&app, &client).await, "listed before the revocation");

    let revoke = format!("/account/authorized-apps/{}/revoke", client.client_id);
    check(
        "revoke under Authorized apps",
        app.post_form(&revoke, &revoke, &[]).await,
        &Expect::new(303).redirect("/account/authorized-apps"),
    )
    .await;

    let rows = [
        (
            "a code from the consent page, redeemed after the revocation",
            &from_consent_page,
        ),
        (
            "a code from remembered consent, redeemed after the revocation",
            &from_remembered_consent,
        ),
    ];
    for (name, code) in rows {
        check(
            name,
            redeem_at_callback(&app, &client, code).await,
            &refused(),
        )
        .await;
    }
    assert_eq!(
        app.count("client_access_tokens"),
        0,
        "case `revoked app`: no token was issued"
    );
    assert!(
        !listed(&app, &client).await,
        "case `revoked app`: a late code put the app back in the list"
    );
    // The other application's code was not touched.
    check(
        "another app's code after the revocation",
        redeem_at_callback(&app, &other, &other_code).await,
        &Expect::new(200).no_store(),
    )
    .await;
}

#[tokio::test]
async fn a_code_is_refused_when_the_consent_no_longer_covers_its_scope() {
    let app = spawn_app().await;
    let client = setup(&app);
    let both = [
        ("client_id", client.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "get_user_profile manage_payment"),
    ];
    let code = query_of(&authorize_and_allow(&app, &both).await)["code"].clone();
    // The consent now covers less than the code was issued for (as a narrower re-consent
    // would leave it).
    diesel::update(consents::table)
        .set(consents::scope.eq("get_user_profile"))
        .execute(&mut app.db.connect())
        .unwrap();
    check(
        "a code wider than the consent",
        redeem_at_callback(&app, &client, &code).await,
        &refused(),
    )
    .await;

    // The consent row gone altogether, however that happened: refused too.
    let res = app.get(&authorize_path(&pairs(&client))).await;
    let fresh = query_of(&location(&res))["code"].clone();
    diesel::delete(consents::table)
        .execute(&mut app.db.connect())
        .unwrap();
    check(
        "a code whose consent row is gone",
        redeem_at_callback(&app, &client, &fresh).await,
        &refused(),
    )
    .await;
    assert_eq!(app.count("client_access_tokens"), 0);

    // Signing in afresh and agreeing again works as before.
    let res = app.get(&authorize_path(&pairs(&client))).await;
    let res = if location(&res).starts_with("/login") {
        log_in_and_resume(&app, &location(&res), END_USER, END_USER_PASSWORD).await
    } else {
        res
    };
    assert_eq!(res.status(), 200, "the consent page again");
    let res = crate::helpers::decide(&app, Html::parse(&res.text().await.unwrap()), "allow").await;
    let again = query_of(&location(&res))["code"].clone();
    check(
        "a code under a consent given again",
        redeem_at_callback(&app, &client, &again).await,
        &Expect::new(200).no_store(),
    )
    .await;
}

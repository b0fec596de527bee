//! Attacks on `/oauth/authorize`: open-redirect near-misses, mix-up (RFC 9207 `iss`), state
//! handling, response_type/response_mode tampering, and a request answered from the wrong
//! session.

use diesel::prelude::*;
use latchkey::db::schema::clients;

use super::{Expect, H, check};
use crate::helpers::{
    CALLBACK, CHALLENGE, END_USER, END_USER_PASSWORD, authorize_path, decide, location,
    log_in_and_resume, setup,
};
use crate::helpers::{Html, MERCHANT_PASSWORD, once_seen, spawn_app};

/// Query parameters of a request.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

/// Our own error page: 400, never a redirect, framed by nobody, not cached.
fn page() -> Expect {
    Expect::new(400)
        .header(H::Is("x-frame-options", "DENY"))
        .header(H::Is("cache-control", "no-store"))
        .header(H::Absent("location"))
}

/// An error sent back to the verified redirect URI.
fn back(error: &'static str) -> Expect {
    Expect::new(303)
        .error(error)
        .redirect(format!("{CALLBACK}?"))
}

/// A valid request waits for sign-in: our login page, never the app.
fn to_login() -> Expect {
    Expect::new(303).redirect("/login?next=%2Foauth%2Fauthorize%2Fresume")
}

#[tokio::test]
async fn redirect_uri_near_misses_and_unknown_clients_never_redirect() {
    let app = spawn_app().await;
    let client = setup(&app);
    let disabled = app.merchant_client(&["--redirect-uri", CALLBACK]);
    diesel::update(clients::table.filter(clients::client_id.eq(&disabled.client_id)))
        .set(clients::is_enabled.eq(false))
        .execute(&mut app.db.connect())
        .unwrap();
    let id = client.client_id.as_str();
    let near_misses: &[(&str, &str)] = &[
        ("trailing slash", "https://app.example.com/callback/"),
        ("upper-case host", "https://APP.example.com/callback"),
        ("upper-case scheme", "HTTPS://app.example.com/callback"),
        ("upper-case path", "https://app.example.com/Callback"),
        (
            "explicit default port",
            "https://app.example.com:443/callback",
        ),
        ("other port", "https://app.example.com:8443/callback"),
        ("longer path", "https://app.example.com/callback/extra"),
        ("dot segments", "https://app.example.com/x/../callback"),
        ("percent-encoded path", "https://app.example.com/%63allback"),
        ("encoded slash", "https://app.example.com/callback%2F"),
        ("added query", "https://app.example.com/callback?x=1"),
        ("fragment", "https://app.example.com/callback#f"),
        (
            "userinfo trick",
            "https://app.example.com@evil.example/callback",
        ),
        (
            "backslash trick",
            "https://app.example.com\\@evil.example/callback",
        ),
        (
            "fragment trick",
            "https://evil.example#@app.example.com/callback",
        ),
        ("trailing dot host", "https://app.example.com./callback"),
        ("subdomain", "https://evil.app.example.com/callback"),
        (
            "suffix domain",
            "https://app.example.com.evil.example/callback",
        ),
        ("homoglyph host", "https://\u{0430}pp.example.com/callback"),
        ("other host", "https://evil.example/callback"),
        ("http downgrade", "http://app.example.com/callback"),
        ("scheme-relative", "//app.example.com/callback"),
        ("no scheme", "app.example.com/callback"),
        ("javascript", "javascript:alert(1)"),
        ("data", "data:text/html,<script>alert(1)</script>"),
        ("trailing space", "https://app.example.com/callback "),
        ("nul byte", "https://app.example.com/callback\0"),
    ];
    for (name, uri) in near_misses {
        let res = app
            .get(&authorize_path(&[
                ("client_id", id),
                ("response_type", "code"),
                ("redirect_uri", uri),
                ("state", "s"),
            ]))
            .await;
        let answer = check(&format!("near miss: {name}"), res, &page()).await;
        assert!(
            Html::parse(&answer.body)
                .text("h1")
                .is_some_and(|t| t == "Invalid redirect URI"),
            "near miss {name}: wrong page"
        );
    }
    // Refused before anything else, so the bad parameters below cannot redirect either.
    let other: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "camelCase redirectUri near miss",
            vec![
                ("clientId", id),
                ("responseType", "code"),
                ("redirectUri", "https://evil.example/callback"),
            ],
        ),
        (
            "redirect_uri twice (good, evil)",
            vec![
                ("client_id", id),
                ("response_type", "token"),
                ("redirect_uri", CALLBACK),
                ("redirect_uri", "https://evil.example/callback"),
            ],
        ),
        (
            "redirect_uri and redirectUri",
            vec![
                ("client_id", id),
                ("response_type", "code"),
                ("redirect_uri", CALLBACK),
                ("redirectUri", "https://evil.example/callback"),
            ],
        ),
        (
            "client_id twice",
            vec![
                ("client_id", id),
                ("client_id", &disabled.client_id),
                ("response_type", "code"),
                ("redirect_uri", CALLBACK),
            ],
        ),
        (
            "unknown client with a bad response_type",
            vec![
                ("client_id", "1234567890123456789"),
                ("response_type", "token"),
                ("redirect_uri", CALLBACK),
            ],
        ),
        (
            "no client_id",
            vec![("response_type", "code"), ("redirect_uri", CALLBACK)],
        ),
        (
            "disabled client",
            vec![
                ("client_id", &disabled.client_id),
                ("response_type", "code"),
                ("redirect_uri", CALLBACK),
            ],
        ),
    ];
    for (name, pairs) in other {
        check(name, app.get(&authorize_path(&pairs)).await, &page()).await;
    }
}

#[tokio::test]
async fn tampered_parameters_go_back_to_the_app_with_state_and_iss() {
    let app = spawn_app().await;
    let client = setup(&app);
    let public = app.create_client("merchant", &["--public", "--redirect-uri", CALLBACK]);
    let public_id = public["client_id"].as_str().unwrap();
    let id = client.client_id.as_str();
    let cases: Vec<(&str, Pairs, Expect)> = vec![
        (
            "response_type=token (implicit)",
            vec![("response_type", "token")],
            back("unsupported_response_type"),
        ),
        (
            "response_type=code token (hybrid)",
            vec![("response_type", "code token")],
            back("unsupported_response_type"),
        ),
        (
            "response_type=id_token",
            vec![("response_type", "id_token")],
            back("unsupported_response_type"),
        ),
        (
            "response_type=CODE",
            vec![("response_type", "CODE")],
            back("unsupported_response_type"),
        ),
        (
            "responseType=token",
            vec![("responseType", "token")],
            back("unsupported_response_type"),
        ),
        ("response_type missing", vec![], back("invalid_request")),
        (
            "response_type twice",
            vec![("response_type", "code"), ("response_type", "token")],
            back("invalid_request"),
        ),
        (
            "response_mode=fragment",
            vec![("response_type", "code"), ("response_mode", "fragment")],
            back("invalid_request"),
        ),
        (
            "response_mode=form_post",
            vec![("response_type", "code"), ("response_mode", "form_post")],
            back("invalid_request"),
        ),
        (
            "response_mode=web_message",
            vec![("response_type", "code"), ("response_mode", "web_message")],
            back("invalid_request"),
        ),
        (
            "response_mode=query is fine",
            vec![("response_type", "code"), ("response_mode", "query")],
            to_login(),
        ),
        (
            "unknown scope",
            vec![("response_type", "code"), ("scope", "admin")],
            back("invalid_scope"),
        ),
        (
            "scope twice",
            vec![
                ("response_type", "code"),
                ("scope", "get_user_profile"),
                ("scope", "admin"),
            ],
            back("invalid_request"),
        ),
        (
            "PKCE plain",
            vec![
                ("response_type", "code"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "plain"),
            ],
            back("invalid_request"),
        ),
        (
            "PKCE without method (plain by default)",
            vec![("response_type", "code"), ("code_challenge", CHALLENGE)],
            back("invalid_request"),
        ),
        (
            "PKCE method without challenge",
            vec![("response_type", "code"), ("code_challenge_method", "S256")],
            back("invalid_request"),
        ),
        (
            "PKCE short challenge",
            vec![
                ("response_type", "code"),
                ("code_challenge", "short"),
                ("code_challenge_method", "S256"),
            ],
            back("invalid_request"),
        ),
    ];
    for (name, mut pairs, expect) in cases {
        pairs.insert(0, ("client_id", id));
        pairs.push(("redirect_uri", CALLBACK));
        pairs.push(("state", "keep-me"));
        let answer = check(name, app.get(&authorize_path(&pairs)).await, &expect).await;
        if expect.error.is_some() {
            let q = answer.query();
            assert_eq!(
                q.get("state").map(String::as_str),
                Some("keep-me"),
                "case `{name}`: state"
            );
            assert_eq!(
                q.get("iss"),
                Some(&app.address),
                "case `{name}`: iss (RFC 9207)"
            );
            assert!(
                q.get("error_description").is_some_and(|d| !d.is_empty()),
                "case `{name}`"
            );
            assert!(
                !q.contains_key("code"),
                "case `{name}`: a code with an error"
            );
        }
    }
    let res = app
        .get(&authorize_path(&[
            ("client_id", public_id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
        ]))
        .await;
    check("public client without PKCE", res, &back("invalid_request")).await;
    assert_eq!(app.count("client_authorization_codes"), 0);

    // State: echoed byte for byte, never invented, and a repeated one is refused.
    for (name, state) in [
        ("state with URL syntax", "a&b=c#d?e/f"),
        ("state with unicode", "zustand \u{1F511} état"),
        ("long state", &"s".repeat(1000)),
    ] {
        let res = app
            .get(&authorize_path(&[
                ("client_id", id),
                ("response_type", "token"),
                ("redirect_uri", CALLBACK),
                ("state", state),
            ]))
            .await;
        let answer = check(name, res, &back("unsupported_response_type")).await;
        assert_eq!(answer.query()["state"], state, "case `{name}`");
    }
    for (name, extra) in [("no state", vec![]), ("empty state", vec![("state", "")])] {
        let mut pairs = vec![
            ("client_id", id),
            ("response_type", "token"),
            ("redirect_uri", CALLBACK),
        ];
        pairs.extend(extra);
        let answer = check(
            name,
            app.get(&authorize_path(&pairs)).await,
            &back("unsupported_response_type"),
        )
        .await;
        assert!(
            !answer.query().contains_key("state"),
            "case `{name}`: invented a state"
        );
    }
    let res = app
        .get(&authorize_path(&[
            ("client_id", id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("state", "one"),
            ("state", "two"),
        ]))
        .await;
    check("state twice", res, &back("invalid_request")).await;
}

#[tokio::test]
async fn mix_up_the_metadata_and_every_authorization_response_name_the_issuer() {
    let app = spawn_app().await;
    let client = setup(&app);
    let meta: serde_json::Value = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["authorization_response_iss_parameter_supported"], true,
        "case `metadata advertises iss`"
    );

    let start = |state: &'static str| {
        authorize_path(&[
            ("client_id", &client.client_id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("scope", "get_user_profile"),
            ("state", state),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
    };
    let res = check(
        "valid request, signed out",
        app.get(&start("deny-me")).await,
        &to_login(),
    )
    .await;
    let res = log_in_and_resume(
        &app,
        res.location.as_deref().unwrap(),
        END_USER,
        END_USER_PASSWORD,
    )
    .await;
    let consent = Html::parse(&res.text().await.unwrap());
    let res = crate::helpers::decide(&app, consent, "deny").await;
    let denied = check("deny", res, &back("access_denied")).await;
    assert_eq!(denied.query()["iss"], app.address, "case `deny`: iss");
    assert_eq!(denied.query()["state"], "deny-me");

    let res = app.get(&start("allow-me")).await;
    let consent = Html::parse(&res.text().await.unwrap());
    let res = crate::helpers::decide(&app, consent, "allow").await;
    let allowed = check(
        "allow",
        res,
        &Expect::new(303).redirect(format!("{CALLBACK}?code=")),
    )
    .await;
    let q = allowed.query();
    assert_eq!(q["iss"], app.address, "case `allow`: iss");
    assert_eq!(q["state"], "allow-me");
    // Remembered consent answers at once, with iss too.
    let res = app.get(&start("again")).await;
    let again = check(
        "remembered consent",
        res,
        &Expect::new(303).redirect(format!("{CALLBACK}?code=")),
    )
    .await;
    assert_eq!(
        again.query()["iss"],
        app.address,
        "case `remembered consent`: iss"
    );
}

#[tokio::test]
async fn a_request_cannot_be_answered_from_another_session() {
    let app = spawn_app().await;
    let client = setup(&app);
    let path = authorize_path(&[
        ("client_id", &client.client_id),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "get_user_profile"),
        ("state", "victim"),
    ]);
    // The victim's browser reaches the consent page.
    let res = app.get(&path).await;
    let res = log_in_and_resume(&app, &location(&res), END_USER, END_USER_PASSWORD).await;
    let consent = Html::parse(&res.text().await.unwrap());
    let request_id = consent.attr("input[name=request_id]", "value").unwrap();
    let victim_csrf = consent.csrf();

    // The attacker, signed in as themselves in another browser, replays the victim's form.
    let attacker = app.new_browser();
    let res = app
        .post_form_in(
            &attacker,
            "/login",
            "/login",
            &[("username", "merchant"), ("password", MERCHANT_PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let own = Html::parse(
        &attacker
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .csrf();
    let post = |csrf: String| {
        attacker
            .post(app.url("/oauth/authorize"))
            .form(&[
                ("request_id", request_id.clone()),
                ("decision", "allow".into()),
                ("csrf_token", csrf),
            ])
            .send()
    };
    check(
        "victim's form and CSRF token from another session",
        post(victim_csrf.clone()).await.unwrap(),
        &Expect::new(403),
    )
    .await;
    check(
        "victim's request id with the attacker's CSRF token",
        post(own).await.unwrap(),
        &page(),
    )
    .await;
    assert_eq!(
        app.count("client_authorization_codes"),
        0,
        "a code was issued across sessions"
    );

    // A signed-out attacker with the victim's form: CSRF fails before anything else.
    let anonymous = app.new_browser();
    let res = anonymous
        .post(app.url("/oauth/authorize"))
        .form(&[
            ("request_id", request_id.as_str()),
            ("decision", "allow"),
            ("csrf_token", &victim_csrf),
        ])
        .send()
        .await
        .unwrap();
    check("victim's form from a fresh browser", res, &Expect::new(403)).await;

    // The victim's own answer still works: nothing above spent the request.
    let res = crate::helpers::decide(&app, consent, "allow").await;
    check(
        "the victim's own answer",
        res,
        &Expect::new(303).redirect(format!("{CALLBACK}?code=")),
    )
    .await;
    // The answered request cannot be answered again.
    let res = app
        .api
        .post(app.url("/oauth/authorize"))
        .form(&[
            ("request_id", request_id.as_str()),
            ("decision", "allow"),
            ("csrf_token", &victim_csrf),
        ])
        .send()
        .await
        .unwrap();
    check("the same answer twice", res, &page()).await;
    assert_eq!(app.count("client_authorization_codes"), 1);
}

/// OIDC Core §6.1, §6.2: `request` and `request_uri` would carry signed parameters that take
/// the place of the outer ones. A request object is refused, after the client and redirect URI
/// are verified, and never ignored: ignoring it issued a code for the outer parameters, which
/// the client never signed. A `request_uri` is only ever one of our pushed requests (RFC 9126,
/// `oauth::par`): any other (a made-up URN, a URL to fetch, beside a request object) gets our
/// error page, with no redirect and no code, whatever the outer parameters say.
#[tokio::test]
async fn request_objects_and_request_uris_are_refused_not_ignored() {
    let app = spawn_app().await;
    let client = setup(&app);
    let id = client.client_id.as_str();
    let outer = [
        ("client_id", id),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "get_user_profile"),
    ];
    // A request object whose claims differ from the outer parameters (alg none, unsigned).
    let object = "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im1hbmFnZV9wYXltZW50In0.";
    let cases: Vec<(&str, Pairs, Expect)> = vec![
        (
            "request (a request object)",
            vec![("request", object)],
            back("request_not_supported"),
        ),
        ("control: neither", vec![], to_login()),
    ];
    // Twice: signed out, then signed in with the consent remembered (where a code would come
    // back at once).
    for signed_in in [false, true] {
        if signed_in {
            let res = app.get(&authorize_path(&outer)).await;
            let res = log_in_and_resume(&app, &location(&res), END_USER, END_USER_PASSWORD).await;
            let consent = Html::parse(&res.text().await.unwrap());
            crate::helpers::decide(&app, consent, "allow").await;
        }
        let issued = app.count("client_authorization_codes");
        for (name, extra, expect) in &cases {
            let name = format!("{name}, signed in: {signed_in}");
            let expect = match (signed_in, expect.error) {
                (true, None) => Expect::new(303).redirect(format!("{CALLBACK}?code=")),
                _ => expect.clone(),
            };
            let mut pairs = outer.to_vec();
            pairs.extend(extra.iter().copied());
            pairs.push(("state", "keep-me"));
            let answer = check(&name, app.get(&authorize_path(&pairs)).await, &expect).await;
            if expect.error.is_some() {
                let q = answer.query();
                assert_eq!(q["state"], "keep-me", "case `{name}`: state");
                assert_eq!(q["iss"], app.address, "case `{name}`: iss");
                assert!(!q.contains_key("code"), "case `{name}`: a code");
            }
        }
        for (name, extra) in [
            (
                "request_uri (a pushed request never made)",
                vec![(
                    "request_uri",
                    "urn:ietf:params:oauth:request_uri:6esc_11ACC5bwc014ltc14eY22c",
                )],
            ),
            (
                "request_uri (a URL to fetch)",
                vec![("request_uri", "https://evil.example/request.jwt")],
            ),
            (
                "request and request_uri",
                vec![
                    ("request", object),
                    ("request_uri", "https://evil.example/request.jwt"),
                ],
            ),
        ] {
            let name = format!("{name}, signed in: {signed_in}");
            let mut pairs = outer.to_vec();
            pairs.extend(extra);
            pairs.push(("state", "keep-me"));
            check(&name, app.get(&authorize_path(&pairs)).await, &page()).await;
        }
        assert_eq!(
            app.count("client_authorization_codes"),
            issued + i64::from(signed_in),
            "only the control issued a code"
        );
    }
    // Before the client and redirect URI are verified, nothing redirects.
    let res = app
        .get(&authorize_path(&[
            ("client_id", id),
            ("response_type", "code"),
            ("redirect_uri", "https://evil.example/callback"),
            ("request_uri", "https://evil.example/request.jwt"),
        ]))
        .await;
    check("request_uri with a foreign redirect URI", res, &page()).await;

    let meta: serde_json::Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    for name in [
        "request_parameter_supported",
        "request_uri_parameter_supported",
    ] {
        // OpenID Connect Discovery: left out, request_uri_parameter_supported means true.
        assert_eq!(meta[name], false, "case `metadata {name}`");
    }
}

/// The consent answer checks the application as the return from the login page does: one whose
/// redirect URI was unregistered, or that was disabled, while its consent page was open gets our
/// error page for Allow and Deny alike, never a redirect to the old URI.
#[tokio::test]
async fn an_answer_after_the_redirect_uri_was_unregistered_goes_nowhere() {
    for (decision, change) in [("allow", "uri"), ("deny", "uri"), ("allow", "disable")] {
        let app = spawn_app().await;
        let client = setup(&app);
        let pairs = [
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", CALLBACK),
            ("state", "s1"),
        ];
        let res = app.get(&authorize_path(&pairs)).await;
        let res = log_in_and_resume(&app, &location(&res), END_USER, END_USER_PASSWORD).await;
        assert_eq!(res.status(), 200, "{decision}/{change}: the consent page");
        let consent = Html::parse(&res.text().await.unwrap());
        let update =
            diesel::update(clients::table.filter(clients::client_id.eq(&client.client_id)));
        match change {
            "uri" => update
                .set(clients::redirect_uri.eq("https://app.example.com/other"))
                .execute(&mut app.db.connect()),
            _ => update
                .set(clients::is_enabled.eq(false))
                .execute(&mut app.db.connect()),
        }
        .unwrap();
        // Made outside the instance, so seen within the client cache's interval: a new request
        // for the same URI (from another browser, not to replace this one's) is refused once it
        // is, and only then is the open page answered.
        let other = app.new_browser();
        once_seen(&format!("{decision}/{change}"), async || {
            let res = other
                .get(app.url(&authorize_path(&pairs)))
                .send()
                .await
                .unwrap();
            res.status() == 400
        })
        .await;
        let res = decide(&app, consent, decision).await;
        let answer = check(&format!("{decision} after {change}"), res, &page()).await;
        assert!(
            answer.body.contains("Application unavailable"),
            "{decision}/{change}: {}",
            answer.body
        );
    }
}

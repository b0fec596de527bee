//! Authorization request query strings (`authorize::read_query`, through `oauth::params`),
//! the error redirect (`redirect_with`, RFC 6749 §4.1.2.1), and the whole of `authorize::validate` against three
//! applications in an in-memory SQLite database (confidential, public, disabled).
//!
//! Invariants besides "no panic":
//! - a parameter read back is never empty (RFC 6749 §3.1), and equals the query's own value
//!   (by its RFC name or its camelCase alias) when the name appears once;
//! - an error redirect to a redirect URI that parses always exists, keeps the URI's scheme,
//!   host and path, has no fragment, and ends with exactly the pairs appended (so `state`
//!   comes back to the client byte for byte);
//! - `validate` never redirects anywhere but a URI the named, enabled application registered
//!   (no open redirector, §4.1.2.1); an accepted request has a registered redirect URI, only
//!   allowed scopes, a valid S256 challenge when one was sent, one always for a public client,
//!   and the request's own `state`; every error response ends with this server's `iss`.
#![no_main]

use std::cell::RefCell;

use latchkey::config::DatabaseUrl;
use latchkey::db::models::client::NewClient;
use latchkey::db::models::user::NewUser;
use latchkey::db::models::{Client, User};
use latchkey::db::{self, AnyConnection, ClientCache, ConnectionManager};
use latchkey::domain::{RedirectUri, Scopes};
use latchkey::oauth::authorize::{Arrival, Refusal, read_query, redirect_with, validate};
use latchkey::oauth::params::{self, Params};
use latchkey::oauth::pkce;
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "https://auth.example";

/// client_id, registered redirect URIs, scopes, confidential, enabled.
const CLIENTS: &[(&str, &str, &str, bool, bool)] = &[
    (
        "3208919753194101125",
        "https://a.example/cb?tenant=7 com.example.app:/oauth",
        "get_user_profile manage_payment openid",
        true,
        true,
    ),
    (
        "abcdefgh",
        "https://revenuemonster.my",
        "get_user_profile",
        false,
        true,
    ),
    (
        "6691658150496327051",
        "https://b.example/",
        "get_user_profile",
        true,
        false,
    ),
];

thread_local! {
    static DB: RefCell<AnyConnection> = RefCell::new(database());
}

fn database() -> AnyConnection {
    let mut conn = ConnectionManager::new(DatabaseUrl::Sqlite(":memory:".into()))
        .establish()
        .expect("in-memory SQLite");
    db::migrate(&mut conn).expect("migrations");
    let now = db::now();
    let owner = User::insert(
        &mut conn,
        &NewUser {
            name: "Acme Sdn Bhd",
            username: "acme",
            password: "not a hash",
            email: None,
            email_verified_at: None,
            created_at: now,
            updated_at: now,
            is_developer: false,
        },
    )
    .expect("owner");
    for &(client_id, redirect_uri, scopes, is_confidential, is_enabled) in CLIENTS {
        Client::insert(
            &mut conn,
            &NewClient {
                client_id,
                name: "Acme Shop",
                description: "",
                home_page_url: None,
                logo_url: None,
                privacy_policy_url: None,
                user_id: owner.id,
                is_live: false,
                redirect_uri,
                grant_types: "authorization_code refresh_token",
                scopes,
                is_confidential,
                is_enabled,
                created_at: now,
                updated_at: now,
                jwks: None,
                require_par: false,
                dpop_bound: false,
                fapi2: false,
            },
        )
        .expect("client");
    }
    conn
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let params = read_query(query);
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    for (snake, camel) in params::aliases(params::AUTHORIZE) {
        let sent: Vec<&str> = pairs
            .iter()
            .filter(|(n, v)| (n == snake || n == camel) && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect();
        match params.get(snake) {
            Some(value) => {
                assert!(!value.is_empty());
                assert!(sent.contains(&value), "{snake}: {value:?} not in {sent:?}");
            }
            None => assert!(sent.is_empty(), "{snake} was sent but not read"),
        }
        if let [only] = sent.as_slice() {
            assert_eq!(params.get(snake), Some(*only));
        }
    }

    if let Some(scope) = params.get("scope")
        && let Ok(scopes) = Scopes::parse(scope)
    {
        assert_eq!(Scopes::from_stored(&scopes.to_stored()), scopes);
    }
    if let Some(challenge) = params.get("code_challenge") {
        let _ = pkce::is_valid_challenge(challenge);
    }

    check_validate(&params);

    let Some(raw) = params.get("redirect_uri") else {
        return;
    };
    let Ok(uri) = RedirectUri::parse(raw) else {
        return;
    };
    let state = params.get("state").unwrap_or("");
    let appended = [
        ("error", "invalid_scope"),
        ("error_description", "The scope is not allowed."),
        ("state", state),
    ];
    let url = redirect_with(uri.as_str(), &appended).expect("a registered URI can redirect");
    let base = url::Url::parse(uri.as_str()).expect("checked by RedirectUri::parse");
    assert_eq!(url.scheme(), base.scheme());
    assert_eq!(url.host_str(), base.host_str());
    assert_eq!(url.path(), base.path());
    assert_eq!(url.fragment(), None);
    let back: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(back.len() >= appended.len());
    let tail = &back[back.len() - appended.len()..];
    for ((name, value), (n, v)) in appended.iter().zip(tail) {
        assert_eq!((*name, *value), (n.as_str(), v.as_str()));
    }
});

fn check_validate(params: &Params) {
    let outcome = DB
        .with(|db| {
            // A fresh cache each time: the database is fixed, so a shared one would only hide
            // the lookup from the fuzzer.
            let clients = ClientCache::default();
            validate(&mut db.borrow_mut(), &clients, params, ISSUER, Arrival::Direct)
        })
        .expect("in-memory SQLite");
    let registered = || {
        let id = params.get("client_id").expect("an application was named");
        let &(_, uris, scopes, confidential, enabled) = CLIENTS
            .iter()
            .find(|c| c.0 == id)
            .expect("a known application");
        assert!(enabled, "a disabled application went on");
        (uris.split(' ').collect::<Vec<_>>(), scopes, confidential)
    };
    match outcome {
        Ok((entry, pending)) => {
            let client = &entry.client;
            let (uris, scopes, confidential) = registered();
            assert_eq!(Some(client.client_id.as_str()), params.get("client_id"));
            assert_eq!(pending.client_id, client.client_id);
            assert!(uris.contains(&pending.redirect_uri.as_str()));
            assert!(pending.scope.is_subset(&Scopes::from_stored(scopes)));
            assert_eq!(pending.state.as_deref(), params.get("state"));
            if let Some(challenge) = &pending.code_challenge {
                assert!(pkce::is_valid_challenge(challenge));
            }
            assert!(confidential || pending.code_challenge.is_some());
        }
        Err(Refusal::Redirect(response)) => {
            let url = response.url();
            let (uris, _, _) = registered();
            let target = uris
                .iter()
                .map(|u| url::Url::parse(u).expect("registered"))
                .find(|u| {
                    (u.scheme(), u.host_str(), u.port(), u.path())
                        == (url.scheme(), url.host_str(), url.port(), url.path())
                });
            assert!(target.is_some(), "redirected to an unregistered URI: {url}");
            let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            assert!(pairs.iter().any(|(n, _)| n == "error"));
            let state = pairs
                .iter()
                .find(|(n, _)| n == "state")
                .map(|(_, v)| v.as_str());
            assert_eq!(state, params.get("state"));
            let iss = pairs.iter().rev().find(|(n, _)| n == "iss");
            assert_eq!(iss.map(|(_, v)| v.as_str()), Some(ISSUER));
        }
        Err(Refusal::Page(_)) => {}
    }
}

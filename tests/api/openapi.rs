//! The OpenAPI description (`docs/openapi.json`, served at `/openapi.json`): it is served as
//! kept, it describes every API route and no other, its references resolve, and real answers
//! have the shapes it gives them. CI's schemathesis step (`tests/schemathesis/run.sh`) fuzzes
//! the running server against it; these tests keep the document honest in `cargo test`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// The description as kept in the repository.
fn kept() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Routes of `routes::api` that are not part of the machine API, and why.
const NOT_DESCRIBED: &[(&str, &str)] = &[
    ("/favicon.ico", "the browser's icon"),
    (
        "/static/{path:.*}",
        "the pages' stylesheets, scripts and images",
    ),
];

/// Every path registered in `routes::api` (src/routes/mod.rs), read from its source.
///
/// The route table is the source: actix-web cannot list its routes at run time, and a list
/// kept beside the table would be one more thing to forget. Every string literal starting with
/// `/` inside `pub fn api` is a path (its only literals are paths; comments are skipped), so a
/// route added there without being described fails [`every_api_route_is_described`]. The
/// methods of each path are then asked of the running server, which knows them for certain.
fn api_paths() -> BTreeSet<String> {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes/mod.rs")).unwrap();
    let start = source
        .find("pub fn api(")
        .expect("src/routes/mod.rs has `pub fn api(`");
    let body = &source[start..];
    let end = body
        .find("\n}\n")
        .expect("`pub fn api` ends with `}` at the start of a line");
    let mut paths = BTreeSet::new();
    for line in body[..end].lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (i, literal) in code.split('"').enumerate() {
            // Odd pieces are inside quotes.
            if i % 2 == 1 && literal.starts_with('/') {
                paths.insert(literal.to_owned());
            }
        }
    }
    assert!(
        paths.contains("/oauth/token") && paths.contains("/healthz"),
        "reading `routes::api` found {paths:?}: has src/routes/mod.rs changed shape?"
    );
    paths
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn send(app: &TestApp, method: &str, path: &str) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    app.api.request(method, app.url(path)).send().await.unwrap()
}

#[tokio::test]
async fn openapi_json_is_the_kept_document_with_the_issuer_as_server() {
    let app = spawn_app().await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let served: Value = res.json().await.unwrap();
    assert_eq!(served["openapi"], "3.1.0");

    let metadata: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    let issuer = metadata["issuer"].as_str().unwrap();
    assert_eq!(served["servers"][0]["url"], issuer);

    let mut kept = kept();
    assert_eq!(kept["openapi"], "3.1.0");
    assert_eq!(
        kept["servers"][0]["url"], "/",
        "the kept copy names no server"
    );
    kept["servers"][0]["url"] = json!(issuer);
    assert!(
        served == kept,
        "the served document differs from docs/openapi.json"
    );
}

#[tokio::test]
async fn every_api_route_is_described() {
    let app = spawn_app().await;
    let doc = kept();
    let described: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let mut registered = api_paths();
    for (path, why) in NOT_DESCRIBED {
        assert!(
            registered.remove(*path),
            "{path} ({why}) is no longer in routes::api: drop it from NOT_DESCRIBED"
        );
    }
    let undescribed: Vec<_> = registered.difference(&described).collect();
    assert!(
        undescribed.is_empty(),
        "routes::api registers {undescribed:?}, which docs/openapi.json does not describe"
    );
    let unregistered: Vec<_> = described.difference(&registered).collect();
    assert!(
        unregistered.is_empty(),
        "docs/openapi.json describes {unregistered:?}, which routes::api does not register"
    );

    // Each path answers exactly the methods described: a described one reaches its handler
    // (whatever it says to an empty request); an undescribed one is refused by the router with
    // 405 and `Allow` naming the described methods (RFC 9110 §15.5.6): every API path is a
    // `web::resource` (a bare `App::route` would answer 404).
    for path in &registered {
        let operations = doc["paths"][path].as_object().unwrap();
        for method in METHODS {
            let res = send(&app, method, path).await;
            let status = res.status();
            if operations.contains_key(method) {
                assert!(
                    status != 404 && status != 405,
                    "{} {path} is described but answers {status}",
                    method.to_uppercase()
                );
            } else {
                assert_eq!(
                    status,
                    405,
                    "{} {path}: not described, so not allowed",
                    method.to_uppercase()
                );
                let allow = res
                    .headers()
                    .get("allow")
                    .map(|v| v.to_str().unwrap().to_lowercase())
                    .unwrap_or_default();
                for described in operations.keys().filter(|k| METHODS.contains(&k.as_str())) {
                    assert!(
                        allow.contains(described.as_str()),
                        "{} {path}: Allow is {allow:?}",
                        method.to_uppercase()
                    );
                }
            }
        }
    }
}

/// The JSON Pointer `reference` (`#/components/...`) in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn collect_refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                found.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, found)),
        _ => {}
    }
}

#[test]
fn references_resolve_and_operations_are_complete() {
    let doc = kept();
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50);
    for r in &refs {
        assert!(resolve(&doc, r).is_some(), "{r} does not resolve");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            assert!(op["summary"].is_string(), "{method} {path}: no summary");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: no success response"
            );
            assert!(
                responses.contains_key("431"),
                "{method} {path}: every request can be refused for its headers (431)"
            );
            for requirement in op["security"].as_array().unwrap() {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(scheme), "{method} {path}: {scheme}");
                }
            }
        }
    }
}

#[tokio::test]
async fn the_metadata_endpoints_are_described() {
    let app = spawn_app().await;
    let doc = kept();
    let metadata: Value = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    let issuer = metadata["issuer"].as_str().unwrap();
    for (name, url) in metadata.as_object().unwrap() {
        // The authorization endpoint is a page for people, not part of the machine API.
        if !(name.ends_with("_endpoint") || name == "jwks_uri") || name == "authorization_endpoint"
        {
            continue;
        }
        let path = url.as_str().unwrap().strip_prefix(issuer).unwrap();
        assert!(
            doc["paths"].get(path).is_some(),
            "{name} ({path}) is not described"
        );
    }
}

/// Whether `value` has the shape `schema` gives it, `Err` saying where not. Enough JSON Schema
/// for this document: `$ref`, `type`, `const`, `enum`, `required`, `properties`,
/// `additionalProperties: false`, `items`, `minItems`, `oneOf`. (Patterns and formats are left
/// to schemathesis in CI.)
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        return conforms(doc, resolve(doc, r).unwrap(), value, at);
    }
    let type_ok = |t: &str| match t {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        other => panic!("type {other} not handled"),
    };
    match &schema["type"] {
        Value::String(t) if !type_ok(t) => return Err(format!("{at}: not {t}: {value}")),
        Value::Array(ts) if !ts.iter().any(|t| type_ok(t.as_str().unwrap())) => {
            return Err(format!("{at}: none of {ts:?}: {value}"));
        }
        _ => {}
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        return Err(format!("{at}: {value} is not {c}"));
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {e:?}"));
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let errors: Vec<_> = options
            .iter()
            .filter_map(|o| conforms(doc, o, value, at).err())
            .collect();
        if options.len() - errors.len() != 1 {
            return Err(format!(
                "{at}: {} of oneOf match: {errors:?}",
                options.len() - errors.len()
            ));
        }
    }
    if let Value::Object(map) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            if !map.contains_key(name.as_str().unwrap()) {
                return Err(format!("{at}: {name} missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (name, v) in map {
            match properties.and_then(|p| p.get(name)) {
                Some(s) => conforms(doc, s, v, &format!("{at}.{name}"))?,
                None if schema["additionalProperties"] == false => {
                    return Err(format!("{at}: {name} not described"));
                }
                None => {}
            }
        }
    }
    if let Value::Array(items) = value {
        if let Some(min) = schema["minItems"].as_u64()
            && (items.len() as u64) < min
        {
            return Err(format!("{at}: fewer than {min} items"));
        }
        for (i, item) in items.iter().enumerate() {
            conforms(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Checks a real response against the operation's description: a described status, content
/// type and required headers, and a body of the described shape.
async fn check(doc: &Value, path: &str, method: &str, res: reqwest::Response) -> Value {
    let status = res.status().as_u16().to_string();
    let mut response = &doc["paths"][path][method]["responses"][&status];
    assert!(
        !response.is_null(),
        "{method} {path}: status {status} is not described"
    );
    if let Some(r) = response["$ref"].as_str() {
        response = resolve(doc, r).unwrap();
    }
    for (name, header) in response["headers"].as_object().into_iter().flatten() {
        let header = match header["$ref"].as_str() {
            Some(r) => resolve(doc, r).unwrap(),
            None => header,
        };
        let sent = res.headers().get(name.as_str());
        if header["required"] == true {
            let sent = sent.unwrap_or_else(|| panic!("{method} {path} {status}: no {name}"));
            if let Some(c) = header["schema"]["const"].as_str() {
                assert_eq!(sent, c, "{method} {path} {status}: {name}");
            }
        }
    }
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = res.bytes().await.unwrap();
    let Some(content) = response["content"].as_object() else {
        assert!(
            bytes.is_empty(),
            "{method} {path} {status}: an undescribed body"
        );
        return Value::Null;
    };
    let content_type = content_type.expect("a content type");
    let essence = content_type.split(';').next().unwrap().trim();
    let media = content
        .get(essence)
        .unwrap_or_else(|| panic!("{method} {path} {status}: {essence} is not described"));
    if !essence.ends_with("json") {
        return Value::Null;
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    if let Err(e) = conforms(doc, &media["schema"], &body, "body") {
        panic!("{method} {path} {status}: {e}\n{body:#}");
    }
    body
}

#[tokio::test]
async fn answers_have_the_described_shapes() {
    let app = spawn_app().await;
    let doc = kept();
    let client = app.merchant_client(&[
        "--scope",
        "get_user_profile",
        "--scope",
        "openid",
        "--scope",
        "email",
        "--redirect-uri",
        "https://shop.example.com/callback",
    ]);
    let basic =
        |req: reqwest::RequestBuilder| req.basic_auth(&client.client_id, Some(&client.secret));

    // The token endpoint in both dialects, at both paths, success and errors.
    let res = app
        .token_form(
            Some(&client),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "get_user_profile openid email"),
            ],
        )
        .await;
    let tokens = check(&doc, "/oauth/token", "post", res).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let res = app
        .token_json(Some(&client), json!({"grantType": "client_credentials"}))
        .await;
    let rm = check(&doc, "/v1/token", "post", res).await;
    assert!(rm["refreshToken"].is_string(), "{rm}");
    let res = app
        .token_json(
            Some(&client),
            json!({"grantType": "refresh_token", "refreshToken": rm["refreshToken"]}),
        )
        .await;
    check(&doc, "/v1/token", "post", res).await;
    let res = app
        .token_form(None, &[("grant_type", "client_credentials")])
        .await;
    let body = check(&doc, "/oauth/token", "post", res).await;
    assert_eq!(body["error"], "invalid_client");
    let res = app.token_json(None, json!({"grantType": "nonsense"})).await;
    let body = check(&doc, "/v1/token", "post", res).await;
    assert!(body["error"]["code"].is_string());
    let res = app
        .token_json(Some(&client), json!({"grantType": "nonsense"}))
        .await;
    let body = check(&doc, "/v1/token", "post", res).await;
    assert_eq!(body["error"]["code"], "UnSupportedGrantType");
    let res = app
        .api
        .post(app.url("/oauth/token"))
        .header("Content-Type", "text/plain")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    check(&doc, "/oauth/token", "post", res).await;
    let res = app
        .api
        .post(app.url("/v1/token"))
        .header("Content-Type", "application/json")
        .body(vec![b' '; 20_000])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    check(&doc, "/v1/token", "post", res).await;

    // Introspection, active and not; revocation.
    let res = basic(app.api.post(app.url("/oauth/introspect")))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    let body = check(&doc, "/oauth/introspect", "post", res).await;
    assert_eq!(body["active"], true);
    let res = basic(app.api.post(app.url("/oauth/introspect")))
        .form(&[("token", "nothing")])
        .send()
        .await
        .unwrap();
    check(&doc, "/oauth/introspect", "post", res).await;
    let res = app
        .api
        .post(app.url("/oauth/introspect"))
        .form(&[("token", "nothing")])
        .send()
        .await
        .unwrap();
    check(&doc, "/oauth/introspect", "post", res).await;

    // The resources, with and without a token.
    for (path, method) in [
        ("/v1/user/profile", "get"),
        ("/oauth/userinfo", "get"),
        ("/oauth/userinfo", "post"),
    ] {
        let request = |token: Option<&str>| {
            let req = match method {
                "get" => app.api.get(app.url(path)),
                _ => app.api.post(app.url(path)),
            };
            match token {
                Some(t) => req.bearer_auth(t),
                None => req,
            }
        };
        let body = check(
            &doc,
            path,
            method,
            request(Some(access.as_str())).send().await.unwrap(),
        )
        .await;
        assert!(body.is_object());
        check(&doc, path, method, request(None).send().await.unwrap()).await;
        check(
            &doc,
            path,
            method,
            request(Some("not.a.token")).send().await.unwrap(),
        )
        .await;
    }
    let narrow = app
        .token_form(
            Some(&client),
            &[("grant_type", "client_credentials"), ("scope", "email")],
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let res = app.profile(narrow["access_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), 403);
    check(&doc, "/v1/user/profile", "get", res).await;

    // PAR: a pushed request, and a refused one.
    let res = basic(app.api.post(app.url("/oauth/par")))
        .form(&[
            ("response_type", "code"),
            ("redirect_uri", "https://shop.example.com/callback"),
            ("scope", "get_user_profile"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    check(&doc, "/oauth/par", "post", res).await;
    let res = basic(app.api.post(app.url("/oauth/par")))
        .form(&[("response_type", "token")])
        .send()
        .await
        .unwrap();
    check(&doc, "/oauth/par", "post", res).await;

    // Revocation: 200 with no body.
    let res = basic(app.api.post(app.url("/oauth/revoke")))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    check(&doc, "/oauth/revoke", "post", res).await;
    let res = app.profile(&access).await;
    check(&doc, "/v1/user/profile", "get", res).await;

    // Discovery, keys, this document, probes.
    let mut by_path: BTreeMap<&str, &str> = BTreeMap::new();
    by_path.insert("/.well-known/jwks.json", "get");
    by_path.insert("/.well-known/oauth-authorization-server", "get");
    by_path.insert("/.well-known/openid-configuration", "get");
    by_path.insert("/openapi.json", "get");
    by_path.insert("/healthz", "get");
    by_path.insert("/readyz", "get");
    for (path, method) in by_path {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        check(&doc, path, method, res).await;
    }
}

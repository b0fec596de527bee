//! The application's side of the journey: a small web server at the registered redirect URI.
//! It receives the code, exchanges it at the token endpoint with the client_id and secret the
//! merchant copied from the portal, calls `/v1/user/profile`, and shows the person who they are.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::Value;

/// RFC 7636 Appendix B: the verifier and its S256 challenge.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// What the application was told and what it got.
#[derive(Debug, Default, Clone)]
pub struct Visit {
    pub query: HashMap<String, String>,
    pub token_status: u16,
    pub tokens: Value,
    pub profile: Value,
}

#[derive(Default)]
struct Credentials {
    client_id: String,
    secret: String,
}

struct State {
    issuer: String,
    redirect_uri: String,
    credentials: Mutex<Credentials>,
    visits: Mutex<Vec<Visit>>,
}

pub struct CallbackServer {
    pub redirect_uri: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

impl CallbackServer {
    /// Listens on a free port; `issuer` is the Latchkey server the app talks to.
    pub fn start(issuer: &str) -> CallbackServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let redirect_uri = format!("http://127.0.0.1:{port}/callback");
        let state = Arc::new(State {
            issuer: issuer.to_owned(),
            redirect_uri: redirect_uri.clone(),
            credentials: Mutex::new(Credentials::default()),
            visits: Mutex::new(Vec::new()),
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/callback", web::get().to(callback))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        CallbackServer {
            redirect_uri,
            state,
            handle,
        }
    }

    /// The credentials the app uses from now on (as pasted into its configuration).
    pub fn configure(&self, client_id: &str, secret: &str) {
        *self.state.credentials.lock().unwrap() = Credentials {
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
        };
    }

    pub fn visits(&self) -> Vec<Visit> {
        self.state.visits.lock().unwrap().clone()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

async fn callback(
    state: web::Data<State>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let query = query.into_inner();
    let (client_id, secret) = {
        let c = state.credentials.lock().unwrap();
        (c.client_id.clone(), c.secret.clone())
    };
    let mut visit = Visit {
        query: query.clone(),
        ..Visit::default()
    };
    let body = if let Some(code) = query.get("code") {
        let http = reqwest::Client::new();
        let res = http
            .post(format!("{}/oauth/token", state.issuer))
            .basic_auth(&client_id, Some(&secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", state.redirect_uri.as_str()),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .unwrap();
        visit.token_status = res.status().as_u16();
        visit.tokens = res.json().await.unwrap_or_default();
        if let Some(token) = visit.tokens["access_token"].as_str() {
            visit.profile = http
                .get(format!("{}/v1/user/profile", state.issuer))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap_or_default();
        }
        match visit.profile["name"].as_str() {
            Some(name) => format!(
                "<h1>Welcome to Acme Shop</h1><p id=\"who\">Signed in as {} ({})</p>",
                escape(name),
                escape(visit.profile["username"].as_str().unwrap_or_default())
            ),
            None => format!(
                "<h1>Sign-in failed</h1><p id=\"who\">The token endpoint answered {}</p>",
                visit.token_status
            ),
        }
    } else {
        format!(
            "<h1>Not signed in</h1><p id=\"who\">{}</p>",
            escape(query.get("error").map(String::as_str).unwrap_or("no code"))
        )
    };
    state.visits.lock().unwrap().push(visit);
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Acme Shop</title></head><body style=\"font-family: system-ui, sans-serif; margin: 2rem\"><main>{body}</main></body></html>"
        ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

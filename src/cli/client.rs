//! `latchkey client create | set | list`.

use clap::Subcommand;
use serde_json::json;

use crate::clients::{self, Registration};
use crate::config::Settings;
use crate::db;
use crate::db::models::{Client, Security};
use crate::domain::{ClientKeys, ClientName, GrantType, RedirectUri, RedirectUris, ScopeName};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register an application. Prints its client_id and, for a confidential client, its secret.
    Create {
        /// Username of the owning merchant.
        #[arg(long)]
        owner: String,
        /// Application name, as end users will see it.
        #[arg(long, value_parser = |s: &str| ClientName::parse(s).map_err(|e| e.to_string()))]
        name: ClientName,
        /// A redirect URI (repeat for several). Matched exactly, byte for byte.
        #[arg(long = "redirect-uri", value_name = "URI", value_parser = |s: &str| RedirectUri::parse(s).map_err(|e| e.to_string()))]
        redirect_uris: Vec<RedirectUri>,
        /// An allowed grant type (repeat for several). Default: client_credentials,
        /// authorization_code and refresh_token (public clients: no client_credentials).
        #[arg(long = "grant-type", value_name = "GRANT", value_parser = |s: &str| s.parse::<GrantType>().map_err(|e| e.to_string()))]
        grant_types: Vec<GrantType>,
        /// An allowed scope (repeat for several). Default: every registered scope except
        /// OpenID Connect's (openid, profile, email), which are added only when named.
        #[arg(long = "scope", value_name = "SCOPE", value_parser = |s: &str| ScopeName::parse(s).map_err(|e| e.to_string()))]
        scopes: Vec<ScopeName>,
        /// A public client (no secret; must use PKCE).
        #[arg(long)]
        public: bool,
        /// A live client (default: sandbox).
        #[arg(long)]
        live: bool,
        /// How the client proves itself at the token, introspection and revocation endpoints:
        /// with a secret (client_secret_basic or client_secret_post, the default), or with a
        /// JWT signed by one of its keys (private_key_jwt, RFC 7523; give --jwks-file).
        #[arg(long, value_name = "METHOD", default_value = "client_secret_basic",
              value_parser = ["client_secret_basic", "client_secret_post", "private_key_jwt"])]
        auth_method: String,
        /// The client's public keys for private_key_jwt: a JWKS document ({"keys": [...]}) or
        /// one JWK. RSA (2048 bits or more), EC P-256 or Ed25519; at most 10; no private parts.
        #[arg(long, value_name = "FILE")]
        jwks_file: Option<std::path::PathBuf>,
        /// Authorization requests must be pushed first (RFC 9126: POST /oauth/par, then
        /// /oauth/authorize with the request_uri); any other is refused.
        #[arg(long)]
        require_par: bool,
        /// Every token request must carry a DPoP proof (RFC 9449 §5.2,
        /// dpop_bound_access_tokens): its access tokens are bound to the client's key.
        #[arg(long)]
        dpop: bool,
        /// The FAPI 2.0 Security Profile: pushed requests, PKCE S256, DPoP, codes of 60 seconds
        /// at most, refresh tokens not rotated, no password grant. Needs --auth-method
        /// private_key_jwt.
        #[arg(long)]
        fapi2: bool,
        /// A resource server: may introspect tokens issued to any client, of any owner. Without
        /// it a client introspects only tokens of its owner's clients (RFC 7662 §4).
        #[arg(long)]
        resource_server: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change what the operator decides about an application.
    Set {
        /// The application's client_id.
        #[arg(long, value_name = "CLIENT_ID")]
        client_id: String,
        /// Whether it is a resource server: one may introspect tokens issued to any client, of
        /// any owner; any other client only tokens of its owner's clients (RFC 7662 §4).
        #[arg(long, value_name = "true|false")]
        resource_server: Option<bool>,
    },
    /// List every application.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(settings: &Settings, cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Create {
            owner,
            name,
            redirect_uris,
            grant_types,
            scopes,
            public,
            live,
            auth_method,
            jwks_file,
            require_par,
            dpop,
            fapi2,
            resource_server,
            json,
        } => {
            let keys = match (auth_method.as_str(), jwks_file) {
                ("private_key_jwt", Some(path)) => {
                    let document = std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("could not read {}: {e}", path.display()))?;
                    let mut keys = ClientKeys::default();
                    keys.add(&document, db::now())
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    Some(keys)
                }
                ("private_key_jwt", None) => {
                    anyhow::bail!("--auth-method private_key_jwt needs --jwks-file FILE")
                }
                (_, Some(_)) => {
                    anyhow::bail!("--jwks-file goes with --auth-method private_key_jwt")
                }
                (_, None) => None,
            };
            let redirect_uris =
                RedirectUris::parse(redirect_uris.iter().map(RedirectUri::as_str), live)
                    .map_err(|e| anyhow::anyhow!("redirect URI {e}"))?;
            let registration = Registration {
                owner,
                name,
                details: Default::default(),
                redirect_uris,
                grant_types: (!grant_types.is_empty()).then_some(grant_types),
                scopes: (!scopes.is_empty()).then_some(scopes),
                confidential: !public,
                live,
                keys,
                security: Security {
                    require_par,
                    dpop_bound: dpop,
                    fapi2,
                },
            };
            let (key, mut conn) = super::connect(settings)?;
            let registered = clients::register_as(&mut conn, &key, &registration, resource_server)?;
            let client = &registered.client;
            if json {
                let mut out = client_json(client, &registration.owner);
                out["client_secret"] = json!(registered.secret);
                println!("{out}");
            } else {
                println!("client_id:     {}", client.client_id);
                if let Some(secret) = &registered.secret {
                    println!("client_secret: {secret}");
                }
                eprintln!(
                    "Created {} {} client \"{}\". {}",
                    client.environment(),
                    if client.is_confidential {
                        "confidential"
                    } else {
                        "public"
                    },
                    client.name,
                    if registered.secret.is_some() {
                        "Store the secret now: it is not printed again."
                    } else if client.jwks.is_some() {
                        "It authenticates with private_key_jwt: a JWT signed by one of its keys."
                    } else {
                        "Public clients have no secret and must use PKCE (S256)."
                    }
                );
            }
            Ok(())
        }
        ClientCommand::Set {
            client_id,
            resource_server,
        } => {
            let Some(resource_server) = resource_server else {
                anyhow::bail!("nothing to change: give --resource-server true or false");
            };
            let (_key, mut conn) = super::connect(settings)?;
            let client = Client::find_by_client_id(&mut conn, &client_id)?
                .ok_or_else(|| anyhow::anyhow!("no client with client_id `{client_id}`"))?;
            let client =
                Client::set_resource_server(&mut conn, client.id, resource_server, db::now())?;
            eprintln!(
                "\"{}\" ({}) {}",
                client.name,
                client.client_id,
                if client.is_resource_server {
                    "is a resource server: it may introspect tokens issued to any client."
                } else {
                    "is not a resource server: it may introspect only tokens of its owner's clients."
                }
            );
            Ok(())
        }
        ClientCommand::List { json } => {
            let (_key, mut conn) = super::connect(settings)?;
            let rows = Client::all_with_owner(&mut conn)?;
            if json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|(c, owner)| client_json(c, owner))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if rows.is_empty() {
                eprintln!(
                    "No clients yet. Create one with `latchkey client create --owner USER --name NAME`."
                );
            } else {
                println!(
                    "{:<20} {:<24} {:<16} {:<8} {:<13} {:<9} GRANT TYPES",
                    "CLIENT_ID", "NAME", "OWNER", "ENV", "TYPE", "STATUS"
                );
                for (c, owner) in &rows {
                    println!(
                        "{:<20} {:<24} {:<16} {:<8} {:<13} {:<9} {}",
                        c.client_id,
                        truncate(&c.name, 24),
                        truncate(owner, 16),
                        c.environment(),
                        if c.is_confidential {
                            "confidential"
                        } else {
                            "public"
                        },
                        if c.is_enabled { "enabled" } else { "disabled" },
                        c.grant_types
                    );
                }
            }
            Ok(())
        }
    }
}

fn client_json(c: &Client, owner: &str) -> serde_json::Value {
    json!({
        "client_id": c.client_id,
        "name": c.name,
        "owner": owner,
        "environment": c.environment(),
        "confidential": c.is_confidential,
        "token_endpoint_auth_method": auth_method(c),
        "require_pushed_authorization_requests": c.requires_par(),
        "dpop_bound_access_tokens": c.requires_dpop(),
        "fapi2": c.fapi2,
        "enabled": c.is_enabled,
        "resource_server": c.is_resource_server,
        "redirect_uris": c.redirect_uris().iter().map(RedirectUri::as_str).collect::<Vec<_>>(),
        "grant_types": c.allowed_grant_types().iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scopes": c.allowed_scopes().iter().map(ScopeName::as_str).collect::<Vec<_>>(),
        "created_at": c.created_at.and_utc().to_rfc3339(),
    })
}

/// RFC 7591's name for how the client authenticates.
fn auth_method(c: &Client) -> &'static str {
    match (c.is_confidential, c.jwks.is_some()) {
        (false, _) => "none",
        (true, true) => "private_key_jwt",
        (true, false) => "client_secret_basic",
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

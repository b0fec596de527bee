//! The "Connect your app" card of an application's page: where the server is (issuer,
//! discovery, endpoints), an authorization URL built for this application, and example
//! requests that work as copied. The secret is filled in only while the page shows it (right
//! after creation or rotation, or on the page that views it after step-up); otherwise the
//! examples read it from `$CLIENT_SECRET`, never from a placeholder hidden inside base64.

use serde::Serialize;

use crate::db::models::Client;
use crate::domain::GrantType;

/// One example: what it does, and the shell command.
#[derive(Debug, Serialize)]
pub struct Example {
    pub label: &'static str,
    pub command: String,
    /// Its lines, for the box's height.
    pub lines: usize,
}

impl Example {
    fn new(label: &'static str, command: String) -> Self {
        let lines = command.lines().count();
        Self {
            label,
            command,
            lines,
        }
    }
}

/// What the card shows.
#[derive(Debug, Serialize)]
pub struct Card {
    pub issuer: String,
    pub discovery_url: String,
    pub token_url: String,
    /// For an application that may use the code flow and has a redirect URI.
    pub authorize_url: Option<String>,
    /// Whether `authorize_url` carries a PKCE placeholder (public applications must send one).
    pub pkce: bool,
    pub examples: Vec<Example>,
}

/// A value inside single quotes for a POSIX shell.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The card for `client`, with `secret` filled into the examples when it is on the page.
pub fn card(issuer: &str, client: &Client, secret: Option<&str>) -> Card {
    let token_url = format!("{issuer}/oauth/token");
    let grants = client.allowed_grant_types();
    let scope = client
        .allowed_scopes()
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let redirect_uri = client
        .redirect_uris()
        .iter()
        .next()
        .map(|u| u.as_str().to_owned());
    let pkce = !client.is_confidential || client.fapi2;
    let authorize_url = redirect_uri
        .as_deref()
        .filter(|_| grants.contains(&GrantType::AuthorizationCode))
        .and_then(|redirect_uri| {
            let mut url = url::Url::parse(&format!("{issuer}/oauth/authorize")).ok()?;
            {
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("response_type", "code")
                    .append_pair("client_id", &client.client_id)
                    .append_pair("redirect_uri", redirect_uri);
                if !scope.is_empty() {
                    query.append_pair("scope", &scope);
                }
                query.append_pair("state", "YOUR_STATE");
                if pkce {
                    query
                        .append_pair("code_challenge", "YOUR_CODE_CHALLENGE")
                        .append_pair("code_challenge_method", "S256");
                }
            }
            Some(url.to_string())
        });

    let mut examples = Vec::new();
    // Key-based applications send an assertion instead: their keys page shows how.
    if client.is_confidential && client.jwks.is_none() {
        let setup = format!(
            "export CLIENT_ID={}\nexport CLIENT_SECRET={}\n",
            quoted(&client.client_id),
            match secret {
                Some(secret) => quoted(secret),
                None => "'paste your client secret here'".to_owned(),
            }
        );
        if grants.contains(&GrantType::ClientCredentials) {
            examples.push(Example::new(
                "A token for your own account (client_credentials), RFC 6749",
                format!(
                    "{setup}curl -s -u \"$CLIENT_ID:$CLIENT_SECRET\" {} \\\n  -d grant_type=client_credentials",
                    quoted(&token_url)
                ),
            ));
            examples.push(Example::new(
                "The same in Revenue Monster's JSON dialect",
                format!(
                    "{setup}curl -s -u \"$CLIENT_ID:$CLIENT_SECRET\" {} \\\n  -H 'Content-Type: application/json' \\\n  -d '{{\"grantType\":\"client_credentials\"}}'",
                    quoted(&format!("{issuer}/v1/token"))
                ),
            ));
        }
        if let (Some(redirect_uri), true) = (
            redirect_uri.as_deref(),
            grants.contains(&GrantType::AuthorizationCode),
        ) {
            examples.push(Example::new(
                "Exchanging the code from the redirect (authorization_code)",
                format!(
                    "{setup}CODE='the code from the redirect'\ncurl -s -u \"$CLIENT_ID:$CLIENT_SECRET\" {} \\\n  -d grant_type=authorization_code --data-urlencode \"code=$CODE\" \\\n  --data-urlencode {}",
                    quoted(&token_url),
                    quoted(&format!("redirect_uri={redirect_uri}"))
                ),
            ));
        }
    }
    Card {
        discovery_url: format!("{issuer}/.well-known/openid-configuration"),
        issuer: issuer.to_owned(),
        token_url,
        authorize_url,
        pkce,
        examples,
    }
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn values_are_quoted_for_the_shell() {
        assert_eq!(quoted("abc"), "'abc'");
        assert_eq!(quoted("it's"), r"'it'\''s'");
        assert_eq!(quoted("$HOME `x`"), "'$HOME `x`'");
    }
}

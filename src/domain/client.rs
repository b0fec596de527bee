//! Applications: their ids, names, redirect URIs and grant types.

use std::fmt;
use std::str::FromStr;

use rand::Rng as _;
use url::{Host, Url};

use super::{Invalid, no_control_chars};

/// A public client identifier. New ones are 19 random digits, like Revenue Monster's
/// (`3208919753194101125`), so they read well over the phone and never need escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    pub fn generate() -> Self {
        let mut rng = rand::rngs::OsRng;
        let first = rng.gen_range(1..=9u8);
        let rest: String = (0..18)
            .map(|_| char::from(b'0' + rng.gen_range(0..=9u8)))
            .collect();
        Self(format!("{first}{rest}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An application's name as end users see it on the consent page: 1–100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName(String);

impl ClientName {
    pub const MAX: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(Invalid::new("can't be blank"));
        }
        if value.chars().count() > Self::MAX {
            return Err(Invalid::new(format!(
                "must be at most {} characters long",
                Self::MAX
            )));
        }
        no_control_chars(value)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The OAuth grants Latchkey implements (RFC 6749 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    Password,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
            Self::RefreshToken => "refresh_token",
        }
    }

    /// Grants a new confidential client gets unless told otherwise. The password grant is off
    /// until the owner turns it on: it hands the user's password to the client (RFC 9700 §2.4).
    pub fn confidential_defaults() -> Vec<GrantType> {
        vec![
            Self::ClientCredentials,
            Self::AuthorizationCode,
            Self::RefreshToken,
        ]
    }

    /// A public client has no secret, so it cannot use client_credentials.
    pub fn public_defaults() -> Vec<GrantType> {
        vec![Self::AuthorizationCode, Self::RefreshToken]
    }

    /// Parses a space-separated list as stored in `clients.grant_types`, skipping unknown words.
    pub fn parse_list(stored: &str) -> Vec<GrantType> {
        stored
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    }

    pub fn join(grants: &[GrantType]) -> String {
        grants
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl FromStr for GrantType {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                Invalid::new(format!(
                    "“{s}” is not a grant type; use one of: authorization_code, client_credentials, password, refresh_token"
                ))
            })
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered redirect URI. The text is kept exactly as registered, because an authorization
/// request must send the same bytes (RFC 9700 §4.1.3: exact string matching); `url::Url` is used
/// only to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    pub const MAX: usize = 2000;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(Invalid::new("can't be blank"));
        }
        if value.len() > Self::MAX {
            return Err(Invalid::new(format!(
                "must be at most {} characters long",
                Self::MAX
            )));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Invalid::new("must not contain spaces"));
        }
        let url = Url::parse(value).map_err(|_| {
            Invalid::new(format!(
                "“{value}” is not an absolute URL such as https://example.com/callback"
            ))
        })?;
        // RFC 6749 §3.1.2: the endpoint URI MUST NOT include a fragment component.
        if url.fragment().is_some() || value.contains('#') {
            return Err(Invalid::new(format!(
                "“{value}” must not contain a fragment (#…)"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Invalid::new(format!(
                "“{value}” must not contain a user name or password"
            )));
        }
        match url.scheme() {
            "http" | "https" => {
                if url.host().is_none() {
                    return Err(Invalid::new(format!("“{value}” has no host")));
                }
            }
            // Native apps may use a private-use scheme in reverse-domain form (RFC 8252 §7.1).
            scheme if scheme.contains('.') => {}
            "javascript" | "data" | "file" | "vbscript" => {
                return Err(Invalid::new(format!(
                    "“{value}” uses a scheme that is not allowed"
                )));
            }
            _ => {
                return Err(Invalid::new(format!(
                    "“{value}” must use https://, http:// or a reverse-domain app scheme such as com.example.app:/callback"
                )));
            }
        }
        Ok(Self(value.to_owned()))
    }

    /// Live applications redirect over https, except to the user's own machine (RFC 8252 §7.3).
    pub fn check_live(&self) -> Result<(), Invalid> {
        let Ok(url) = Url::parse(&self.0) else {
            return Err(Invalid::new("is not a URL"));
        };
        if url.scheme() == "http" && !is_loopback(&url) {
            return Err(Invalid::new(format!(
                "“{}” must use https:// for a live application (http:// is allowed only for localhost)",
                self.0
            )));
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// An application's registered redirect URIs, without duplicates, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedirectUris(Vec<RedirectUri>);

impl RedirectUris {
    /// At most this many per application: enough for every environment of an app, few enough
    /// that the list stays reviewable.
    pub const MAX_COUNT: usize = 10;

    pub fn parse<'a>(raw: impl IntoIterator<Item = &'a str>, live: bool) -> Result<Self, Invalid> {
        let mut uris: Vec<RedirectUri> = Vec::new();
        for line in raw.into_iter().map(str::trim).filter(|l| !l.is_empty()) {
            let uri = RedirectUri::parse(line)?;
            if live {
                uri.check_live()?;
            }
            if !uris.contains(&uri) {
                uris.push(uri);
            }
        }
        if uris.len() > Self::MAX_COUNT {
            return Err(Invalid::new(format!(
                "list has {} entries: at most {} are allowed",
                uris.len(),
                Self::MAX_COUNT
            )));
        }
        Ok(Self(uris))
    }

    /// Reads the stored, space-separated form (already validated when written).
    pub fn from_stored(stored: &str) -> Self {
        Self(
            stored
                .split_whitespace()
                .map(|s| RedirectUri(s.to_owned()))
                .collect(),
        )
    }

    /// The stored form: space separated (no URI contains a space).
    pub fn to_stored(&self) -> String {
        self.iter()
            .map(RedirectUri::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn iter(&self) -> impl Iterator<Item = &RedirectUri> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Exact, byte-for-byte match against one registered URI (RFC 9700 §2.1).
    pub fn contains_exact(&self, candidate: &str) -> bool {
        self.0.iter().any(|u| u.0 == candidate)
    }
}

/// Up to two letters, for the logo placeholder (the portal and the consent page).
pub fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .filter(|c| c.is_alphanumeric())
        .take(2)
        .flat_map(char::to_uppercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_for_the_logo_placeholder() {
        assert_eq!(initials("acme shop"), "AS");
        assert_eq!(initials("Toko"), "T");
        assert_eq!(initials("  "), "");
        assert_eq!(initials("a b c"), "AB");
    }

    #[test]
    fn client_ids_are_19_digits() {
        let id = ClientId::generate();
        assert_eq!(id.as_str().len(), 19);
        assert!(id.as_str().chars().all(|c| c.is_ascii_digit()));
        assert!(!id.as_str().starts_with('0'));
        assert_ne!(id, ClientId::generate());
    }

    #[test]
    fn grant_types_round_trip() {
        for g in GrantType::ALL {
            assert_eq!(g.as_str().parse::<GrantType>().unwrap(), g);
        }
        assert!("implicit".parse::<GrantType>().is_err());
        assert_eq!(
            GrantType::parse_list("client_credentials refresh_token"),
            vec![GrantType::ClientCredentials, GrantType::RefreshToken]
        );
    }

    #[test]
    fn redirect_uris_are_checked_and_kept_verbatim() {
        assert_eq!(
            RedirectUri::parse("https://App.example.com/cb")
                .unwrap()
                .as_str(),
            "https://App.example.com/cb"
        );
        for bad in [
            "/relative",
            "https://example.com/cb#frag",
            "https://user@example.com/cb",
            "javascript:alert(1)",
            "ftp://example.com/x",
            "https://exa mple.com",
            "",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(RedirectUri::parse("com.example.app:/oauth").is_ok());
    }

    #[test]
    fn live_apps_need_https_except_loopback() {
        assert!(RedirectUris::parse(["http://example.com/cb"], false).is_ok());
        assert!(RedirectUris::parse(["http://example.com/cb"], true).is_err());
        assert!(
            RedirectUris::parse(
                [
                    "http://127.0.0.1:9000/cb",
                    "http://localhost/cb",
                    "http://[::1]/cb"
                ],
                true
            )
            .is_ok()
        );
        let uris = RedirectUris::parse(
            [
                "https://a.example/cb",
                "https://a.example/cb",
                "https://b.example/",
            ],
            true,
        )
        .unwrap();
        assert_eq!(uris.to_stored(), "https://a.example/cb https://b.example/");
        assert!(uris.contains_exact("https://b.example/"));
        assert!(!uris.contains_exact("https://b.example"));
        assert_eq!(RedirectUris::from_stored(&uris.to_stored()), uris);
    }
}

//! Every setting in one place: its command-line flag, the `LATCHKEY_*` environment variable behind
//! it, its default, and how a raw value becomes a typed one.
//!
//! Values are parsed by clap, so a bad value fails before anything is opened or written, with a
//! message that names the flag. Checks that need more than one value (the issuer defaults to the
//! bind address) live in [`Settings`]' methods.

pub mod file;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use url::Url;

/// Settings shared by every subcommand. Each flag may also be given after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// A configuration file (TOML) with any of these settings, named as the flags are with `_`
    /// for `-` (`data_dir = "/var/lib/latchkey"`). A flag beats its environment variable,
    /// which beats the file, which beats the default; `latchkey config show` prints the result.
    #[arg(long, env = "LATCHKEY_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Address and port the HTTP server listens on.
    #[arg(
        long,
        env = "LATCHKEY_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: SocketAddr,

    /// Database: `postgres://…` for PostgreSQL, `sqlite://PATH` for SQLite.
    /// Default: SQLite at `<data-dir>/latchkey.db`.
    #[arg(long, env = "LATCHKEY_DATABASE_URL", value_parser = DatabaseUrl::parse, global = true)]
    pub database_url: Option<DatabaseUrl>,

    /// Public base URL of this server, used as the token issuer (`iss`) and in links.
    /// Default: `http://<bind>`.
    #[arg(long, env = "LATCHKEY_ISSUER", value_parser = parse_issuer, global = true)]
    pub issuer: Option<Url>,

    /// Folder for the SQLite database, the generated secret key and outgoing mail files.
    #[arg(long, env = "LATCHKEY_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// Server secret key (at least 32 bytes, hex or base64): signs session cookies and encrypts
    /// secrets at rest. Default: generated into `<data-dir>/secret.key` on first start.
    #[arg(long, env = "LATCHKEY_SECRET_KEY", value_parser = parse_secret_key, hide_env_values = true, global = true)]
    pub secret_key: Option<SecretKeyMaterial>,

    /// SMTP server for outgoing mail, e.g. `smtp://user:pass@mail.example.com:587`.
    /// Default: messages are written as `.eml` files to `<data-dir>/mail/`.
    #[arg(long, env = "LATCHKEY_SMTP_URL", value_parser = parse_smtp_url, hide_env_values = true, global = true)]
    pub smtp_url: Option<Url>,

    /// Sender of outgoing mail.
    #[arg(long, env = "LATCHKEY_MAIL_FROM", default_value = "Latchkey <no-reply@latchkey.localhost>",
          value_parser = parse_mailbox, global = true)]
    pub mail_from: lettre::message::Mailbox,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "LATCHKEY_ACCESS_TOKEN_TTL", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(60..=86_400), global = true)]
    pub access_token_ttl: u64,

    /// Lifetime of refresh tokens, in seconds (default 30 days).
    #[arg(long, env = "LATCHKEY_REFRESH_TOKEN_TTL", default_value_t = 2_592_000,
          value_parser = clap::value_parser!(u64).range(300..=31_536_000), global = true)]
    pub refresh_token_ttl: u64,

    /// Lifetime of authorization codes, in seconds (at most 600, RFC 6749 §4.1.2).
    #[arg(long, env = "LATCHKEY_CODE_TTL", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(10..=600), global = true)]
    pub code_ttl: u64,

    /// Require server nonces in DPoP proofs (RFC 9449 §8): a proof without the current nonce is
    /// answered `use_dpop_nonce` with one in `DPoP-Nonce`, and the client retries. This limits
    /// proofs made in advance to about five minutes; it costs each client one extra round trip
    /// every few minutes. Nonces are stateless (an HMAC under the server key), so every instance
    /// accepts every other's.
    #[arg(long, env = "LATCHKEY_DPOP_NONCE", global = true)]
    pub dpop_nonce: bool,

    /// Applications go live (in the portal) only from accounts with two-step sign-in, since a
    /// live secret moves real money: without it the portal says why and links to the Security
    /// page. Applications already live keep working, and their owners are asked on the portal
    /// to add a factor. `false` turns the rule off.
    #[arg(long, env = "LATCHKEY_REQUIRE_MFA_FOR_LIVE", default_value_t = true,
          action = clap::ArgAction::Set, value_name = "true|false", global = true)]
    pub require_mfa_for_live: bool,

    /// How often each instance reloads the signing keys, in seconds: a `keys rotate` takes
    /// effect everywhere within this time.
    #[arg(long, env = "LATCHKEY_KEY_REFRESH", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub key_refresh: u64,

    /// How often each instance asks the database whether an application or its secrets were
    /// changed by another process (another instance, the CLI, SQL by hand), in seconds: such a
    /// change takes effect everywhere within this time; one made through an instance takes
    /// effect on it at once. One small query, and only while requests come.
    #[arg(long, env = "LATCHKEY_CLIENT_REFRESH", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub client_refresh: u64,

    /// How often expired codes, tokens and sessions are deleted, in seconds.
    #[arg(long, env = "LATCHKEY_CLEANUP_INTERVAL", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub cleanup_interval: u64,

    /// How often this process writes its counts of token requests (the activity page), in
    /// seconds; the page writes them too when it opens.
    #[arg(long, env = "LATCHKEY_COUNTS_INTERVAL", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub counts_interval: u64,

    /// Database connections per process.
    #[arg(long, env = "LATCHKEY_DB_POOL_SIZE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=500), global = true)]
    pub db_pool_size: u32,

    /// Reverse proxies / load balancers in front of Latchkey: addresses or CIDR ranges
    /// (`10.0.0.0/8`, `fd00::/8`), comma separated. For requests from them, the client address
    /// (for throttling and the audit log) is taken from `X-Forwarded-For`; from anyone else that
    /// header is ignored.
    #[arg(
        long,
        env = "LATCHKEY_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_proxy,
        global = true
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Address and port of the Prometheus metrics listener (`GET /metrics`), kept apart from
    /// the public one so that it is never exposed with it. Port 0 picks a free port.
    #[arg(
        long,
        env = "LATCHKEY_METRICS_BIND",
        default_value = "127.0.0.1:9464",
        global = true
    )]
    pub metrics_bind: SocketAddr,

    /// OpenTelemetry collector to send traces to over OTLP/HTTP (protobuf), for example
    /// `http://otel-collector:4318`. Default: no traces are exported.
    #[arg(long, env = "LATCHKEY_OTLP_ENDPOINT", value_parser = parse_otlp_endpoint, global = true)]
    pub otlp_endpoint: Option<Url>,

    /// On SIGTERM, how long `/readyz` answers 503 while requests are still served, in seconds,
    /// so that a load balancer stops sending new ones before the listener closes. Set it to
    /// the balancer's health-check period times its failure threshold.
    #[arg(long, env = "LATCHKEY_SHUTDOWN_DELAY", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(0..=300), global = true)]
    pub shutdown_delay: u64,

    /// After the listener closes, how long in-flight requests get to finish, in seconds.
    #[arg(long, env = "LATCHKEY_SHUTDOWN_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub shutdown_timeout: u64,

    /// HTTP worker threads. Default: one per CPU core.
    #[arg(long, env = "LATCHKEY_WORKERS", value_parser = clap::value_parser!(u16).range(1..=256), global = true)]
    pub workers: Option<u16>,

    /// Log line format.
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter, in `tracing` syntax (for example `info` or `latchkey=debug,info`).
    #[arg(long, env = "LATCHKEY_LOG", default_value = "info", global = true)]
    pub log: String,
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Settings {
    /// The database to use: the configured URL, or SQLite in the data folder.
    pub fn database(&self) -> DatabaseUrl {
        self.database_url
            .clone()
            .unwrap_or_else(|| DatabaseUrl::Sqlite(self.data_dir.join("latchkey.db")))
    }

    /// The issuer URL, without a trailing slash (RFC 8414 §2 compares it as a string).
    /// Without `--issuer` it is `http://` and the address the server actually listens on.
    pub fn issuer(&self, listening_on: SocketAddr) -> String {
        let url = match &self.issuer {
            Some(url) => url.to_string(),
            None => format!("http://{listening_on}"),
        };
        url.trim_end_matches('/').to_owned()
    }

    pub fn client_refresh(&self) -> Duration {
        Duration::from_secs(self.client_refresh)
    }

    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl)
    }

    pub fn refresh_token_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl)
    }

    pub fn code_ttl(&self) -> Duration {
        Duration::from_secs(self.code_ttl)
    }
}

/// Which database backend to open, chosen at run time from the URL's scheme.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A libpq connection URI, passed through unchanged.
    Postgres(String),
    /// A file path (or `:memory:`).
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// Accepts `postgres://`, `postgresql://`, `sqlite://PATH` and `sqlite:PATH`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Url::parse(raw).map_err(|e| format!("is not a valid PostgreSQL URL ({e})"))?;
            return Ok(Self::Postgres(raw.to_owned()));
        }
        if let Some(path) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("has no file path after `sqlite://`".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        let scheme = raw.split_once(':').map(|(s, _)| s).unwrap_or(raw);
        Err(format!(
            "has unsupported scheme `{scheme}`: use postgres://USER@HOST/DB or sqlite://PATH"
        ))
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(path) => Some(path),
            Self::Postgres(_) => None,
        }
    }
}

/// Never prints a password that may be part of the URL.
impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    /// The URL with any password replaced, for logs and error messages.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(raw) => match Url::parse(raw) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    url.to_string()
                }
                Err(_) => "postgres://(unparseable)".into(),
            },
        }
    }
}

/// Raw bytes of the server secret key, as given. Turned into keys by [`crate::crypto::ServerKey`].
#[derive(Clone)]
pub struct SecretKeyMaterial(pub Vec<u8>);

impl std::fmt::Debug for SecretKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKeyMaterial(***)")
    }
}

/// Minimum length of the server secret key, in bytes.
pub const MIN_SECRET_KEY_BYTES: usize = 32;

/// Accepts hex or base64 (standard or URL-safe, padded or not) of at least 32 bytes.
pub fn parse_secret_key(raw: &str) -> Result<SecretKeyMaterial, String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

    let raw = raw.trim();
    let decoded = hex::decode(raw).ok().or_else(|| {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(raw).ok())
    });
    match decoded {
        Some(bytes) if bytes.len() >= MIN_SECRET_KEY_BYTES => Ok(SecretKeyMaterial(bytes)),
        Some(bytes) => Err(format!(
            "decodes to {} bytes; at least {MIN_SECRET_KEY_BYTES} are needed (generate one with `openssl rand -hex 32`)",
            bytes.len()
        )),
        None => {
            Err("is neither hex nor base64 (generate one with `openssl rand -hex 32`)".to_owned())
        }
    }
}

fn parse_issuer(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".into());
    }
    // RFC 8414 §2: the issuer has no query or fragment component.
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment (RFC 8414 §2)".into());
    }
    if url.host_str().is_none() {
        return Err("has no host".into());
    }
    Ok(url)
}

/// An address (one host) or a CIDR range.
fn parse_proxy(raw: &str) -> Result<ipnet::IpNet, String> {
    let raw = raw.trim();
    if let Ok(addr) = raw.parse::<std::net::IpAddr>() {
        return Ok(addr.into());
    }
    raw.parse::<ipnet::IpNet>().map_err(|_| {
        format!("`{raw}` is neither an IP address nor a CIDR range such as 10.0.0.0/8")
    })
}

fn parse_otlp_endpoint(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL of an OTLP/HTTP collector".into());
    }
    Ok(url)
}

fn parse_mailbox(raw: &str) -> Result<lettre::message::Mailbox, String> {
    raw.trim()
        .parse()
        .map_err(|_| "is not an email address such as `Latchkey <no-reply@example.com>`".to_owned())
}

fn parse_smtp_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err("must start with smtp:// or smtps://".into());
    }
    if url.host_str().is_none() {
        return Err("has no host".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_choose_the_backend_by_scheme() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u@h/db"),
            Ok(DatabaseUrl::Postgres("postgres://u@h/db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://u@h/db"),
            Ok(DatabaseUrl::Postgres("postgresql://u@h/db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/x.db"),
            Ok(DatabaseUrl::Sqlite("data/x.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:/abs/x.db"),
            Ok(DatabaseUrl::Sqlite("/abs/x.db".into()))
        );
        let err = DatabaseUrl::parse("mysql://root@localhost/db").unwrap_err();
        assert!(err.contains("`mysql`"), "{err}");
        assert!(DatabaseUrl::parse("data/latchkey.db").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn postgres_passwords_are_redacted() {
        let url = DatabaseUrl::parse("postgres://me:hunter2@db/app").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(url.redacted().contains("***"));
    }

    #[test]
    fn secret_keys_need_32_bytes() {
        assert_eq!(parse_secret_key(&"ab".repeat(32)).unwrap().0.len(), 32);
        assert!(parse_secret_key(&"ab".repeat(16)).is_err());
        assert!(parse_secret_key("not a key!").is_err());
        // 32 bytes of base64url
        assert!(parse_secret_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").is_ok());
    }

    #[test]
    fn proxies_are_addresses_or_cidr_ranges() {
        let one = parse_proxy("10.1.2.3").unwrap();
        assert!(one.contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap()));
        assert!(!one.contains(&"10.1.2.4".parse::<std::net::IpAddr>().unwrap()));
        let range = parse_proxy("10.0.0.0/8").unwrap();
        assert!(range.contains(&"10.200.0.1".parse::<std::net::IpAddr>().unwrap()));
        assert!(parse_proxy("fd00::/8").is_ok());
        assert!(parse_proxy("10.0.0.0/33").is_err());
        assert!(parse_proxy("proxy.example").is_err());
    }

    #[test]
    fn issuer_rejects_query_and_non_http() {
        assert!(parse_issuer("https://auth.example.com").is_ok());
        assert!(parse_issuer("https://auth.example.com/?a=b").is_err());
        assert!(parse_issuer("ftp://auth.example.com").is_err());
        assert!(parse_issuer("auth.example.com").is_err());
    }
}

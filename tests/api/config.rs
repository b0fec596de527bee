//! Settings and `latchkey serve` as an operator runs it: a fresh data folder, bad values, an
//! unreachable database, and a graceful stop.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::helpers::{latchkey_bin, run_cli};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Asserts one line on stderr, naming `setting`, with no panic or backtrace, and exit code `code`.
fn assert_setting_error(args: &[&str], vars: &[(&str, &str)], setting: &str, code: i32) {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let mut vars = vars.to_vec();
    let dir = data_dir.display().to_string();
    vars.push(("LATCHKEY_DATA_DIR", &dir));
    let out = run_cli(args, "", &env(&vars));
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?} {vars:?}: {}",
        out.stderr
    );
    let stderr = out.stderr.trim();
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.starts_with("latchkey: "), "{stderr}");
    assert!(stderr.contains(setting), "{setting} not named: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(!data_dir.exists(), "{args:?} wrote {}", data_dir.display());
}

#[test]
fn a_database_url_with_another_scheme_is_refused() {
    assert_setting_error(
        &["serve"],
        &[("LATCHKEY_DATABASE_URL", "mysql://root@localhost/db")],
        "LATCHKEY_DATABASE_URL",
        2,
    );
    assert_setting_error(
        &["serve"],
        &[("LATCHKEY_DATABASE_URL", "data/latchkey.db")],
        "LATCHKEY_DATABASE_URL",
        2,
    );
    assert_setting_error(
        &["migrate", "--database-url", "redis://127.0.0.1"],
        &[],
        "--database-url",
        2,
    );
}

#[test]
fn an_unreachable_database_is_one_line_and_names_the_setting() {
    assert_setting_error(
        &["serve"],
        &[(
            "LATCHKEY_DATABASE_URL",
            "postgres://postgres:hunter2@127.0.0.1:1/test",
        )],
        "LATCHKEY_DATABASE_URL",
        1,
    );
    // The password in the URL is never printed.
    let out = run_cli(
        &["migrate"],
        "",
        &env(&[(
            "LATCHKEY_DATABASE_URL",
            "postgres://postgres:hunter2@127.0.0.1:1/test",
        )]),
    );
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
}

#[test]
fn bad_values_name_their_setting() {
    assert_setting_error(
        &["serve"],
        &[("LATCHKEY_BIND", "localhost")],
        "LATCHKEY_BIND",
        2,
    );
    assert_setting_error(
        &["serve"],
        &[("LATCHKEY_ACCESS_TOKEN_TTL", "0")],
        "LATCHKEY_ACCESS_TOKEN_TTL",
        2,
    );
    assert_setting_error(
        &["serve"],
        &[("LATCHKEY_CODE_TTL", "3600")],
        "LATCHKEY_CODE_TTL",
        2,
    );
    assert_setting_error(
        &["serve"],
        &[("LATCHKEY_ISSUER", "auth.example.com")],
        "LATCHKEY_ISSUER",
        2,
    );
    assert_setting_error(
        &["serve"],
        &[("LATCHKEY_LOG_FORMAT", "xml")],
        "LATCHKEY_LOG_FORMAT",
        2,
    );
    assert_setting_error(
        &["serve"],
        &[("LATCHKEY_SMTP_URL", "http://mail")],
        "LATCHKEY_SMTP_URL",
        2,
    );
    assert_setting_error(&["serve", "--db-pool-size", "0"], &[], "--db-pool-size", 2);
    // A short key is refused, and the key itself is not echoed.
    let out = run_cli(
        &["serve"],
        "",
        &env(&[("LATCHKEY_SECRET_KEY", "abcdef0123")]),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("LATCHKEY_SECRET_KEY") && !out.stderr.contains("abcdef0123"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_corrupt_key_file_is_reported_not_replaced() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("secret.key"), "too short").unwrap();
    let out = run_cli(
        &["migrate"],
        "",
        &env(&[("LATCHKEY_DATA_DIR", &data.path().display().to_string())]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("secret.key") && out.stderr.contains("LATCHKEY_SECRET_KEY"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(data.path().join("secret.key")).unwrap(),
        "too short"
    );
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// `latchkey serve` on an empty folder: creates the SQLite database and a private key file,
/// answers /healthz, keeps its data across a restart, and stops cleanly on SIGTERM.
#[test]
fn serve_on_a_fresh_folder_creates_the_database_and_stops_on_sigterm() {
    let work = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let mut command = Command::new(latchkey_bin());
        command.current_dir(work.path()).env_clear();
        let mut served = crate::served::Served::start_command(command, &[], &[]);
        let (port, lines) = (served.port, served.startup.clone());
        let generated_key = lines
            .iter()
            .any(|l| l.contains("generated a new server secret key"));
        assert_eq!(generated_key, round == 0, "{lines:?}");

        let health = http_get(port, "/healthz");
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let ready = http_get(port, "/readyz");
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        // One log line per request, with method, path, status, latency and request id.
        let request_line = served
            .line(Duration::from_secs(5), |line| line["path"] == "/healthz")
            .unwrap();
        assert_eq!(request_line["method"], "GET");
        assert_eq!(request_line["status"], 200);
        assert!(request_line["request_id"].is_string() && request_line["latency_ms"].is_string());

        served.signal("TERM");
        let status = served.wait(Duration::from_secs(20));
        assert!(status.success(), "exit status {status:?}");
    }

    let data = work.path().join("data");
    assert!(data.join("latchkey.db").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

// ---- the configuration file ------------------------------------------------------------------

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A flag beats its variable, which beats the file, which beats the default; `config show` says
/// which gave each value and masks the secrets, wherever they came from.
#[test]
fn precedence_is_flag_then_environment_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let key = "ab".repeat(32);
    let key_file = write(dir.path(), "secret.key", &format!("{key}\n"));
    let config = write(
        dir.path(),
        "latchkey.toml",
        &format!(
            "access_token_ttl = 120\ncode_ttl = 30\nrefresh_token_ttl = 600\n\
             trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]\nlog_format = \"json\"\n\
             secret_key_file = \"{key_file}\"\n\
             database_url = \"postgres://app:hunter2@db.internal/latchkey\"\n"
        ),
    );
    let out = run_cli(
        &["--config", &config, "config", "show", "--code-ttl", "60"],
        "",
        &env(&[("LATCHKEY_ACCESS_TOKEN_TTL", "300")]),
    );
    assert!(out.success(), "{}", out.stderr);
    let shown = out.stdout;
    for line in [
        "access_token_ttl = 300  # environment (LATCHKEY_ACCESS_TOKEN_TTL)",
        "code_ttl = 60  # flag",
        "refresh_token_ttl = 600  # config file (refresh_token_ttl)",
        "cleanup_interval = 600  # default",
        "trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]  # config file (trusted_proxies)",
        "log_format = \"json\"  # config file (log_format)",
        "# secret_key = \"***\"  # config file (secret_key_file)",
        "# database_url = \"postgres://app:***@db.internal/latchkey\"  # config file (database_url)",
        "# issuer is not set",
    ] {
        assert!(shown.lines().any(|l| l == line), "no `{line}` in:\n{shown}");
    }
    assert!(
        !shown.contains(&key) && !shown.contains("hunter2"),
        "{shown}"
    );
    assert!(shown.contains(&format!("# Configuration file: {config}")));
    // What it prints is itself a valid configuration file.
    let again = write(dir.path(), "shown.toml", &shown);
    let reread = run_cli(&["--config", &again, "config", "show"], "", &[]);
    assert!(reread.success(), "{}", reread.stderr);

    // LATCHKEY_SECRET_KEY_FILE is the environment's, above the file.
    let other = write(dir.path(), "other.key", &"cd".repeat(32));
    let out = run_cli(
        &["config", "show"],
        "",
        &env(&[
            ("LATCHKEY_CONFIG", &config),
            ("LATCHKEY_SECRET_KEY_FILE", &other),
        ]),
    );
    assert!(out.success(), "{}", out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "# secret_key = \"***\"  # environment (LATCHKEY_SECRET_KEY_FILE)"),
        "{}",
        out.stdout
    );
}

/// The file's settings are the ones the server runs with: its secret key from a file, its token
/// lifetime, its address.
#[test]
fn serve_runs_with_the_files_settings() {
    let dir = tempfile::tempdir().unwrap();
    let key = "ef".repeat(32);
    let key_file = write(dir.path(), "secret.key", &key);
    let data = dir.path().join("data");
    let config = write(
        dir.path(),
        "latchkey.toml",
        &format!(
            "data_dir = \"{}\"\naccess_token_ttl = 120\nsecret_key_file = \"{key_file}\"\n",
            data.display()
        ),
    );
    let created = run_cli(
        &[
            "--config",
            &config,
            "user",
            "create",
            "--username",
            "cfgowner",
            "--name",
            "Owner",
        ],
        "a long password 1\n",
        &[],
    );
    assert!(created.success(), "{}", created.stderr);
    let client = run_cli(
        &[
            "--config",
            &config,
            "client",
            "create",
            "--owner",
            "cfgowner",
            "--name",
            "Configured",
            "--json",
        ],
        "",
        &[],
    );
    assert!(client.success(), "{}", client.stderr);
    let client: serde_json::Value = serde_json::from_str(&client.stdout).unwrap();
    // No key file was generated: the configured one is used.
    assert!(!data.join("secret.key").exists());
    let served = crate::served::Served::start(&[], &["--config", &config]);
    let body = "grant_type=client_credentials";
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str().unwrap()
        ))
    };
    let mut stream = TcpStream::connect(("127.0.0.1", served.port)).unwrap();
    write!(
        stream,
        "POST /oauth/token HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"expires_in\":120"), "{answer}");
}

/// A bad file is one line naming the file and the key, exit code 2, nothing written.
#[test]
fn a_bad_configuration_file_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cases = [
        (
            "unknown.toml",
            "bnid = \"127.0.0.1:1\"\n",
            "`bnid` is not a setting",
        ),
        ("range.toml", "access_token_ttl = 5\n", "`access_token_ttl`"),
        ("type.toml", "workers = 1.5\n", "`workers` must be"),
        ("syntax.toml", "bind = \n", "not valid TOML"),
        (
            "proxies.toml",
            "trusted_proxies = [\"proxy.example\"]\n",
            "`trusted_proxies`",
        ),
        (
            "missing-key.toml",
            "secret_key_file = \"/nonexistent/key\"\n",
            "`secret_key_file` cannot read",
        ),
    ];
    for (name, text, wanted) in cases {
        let config = write(dir.path(), name, text);
        let out = run_cli(
            &["--config", &config, "migrate"],
            "",
            &env(&[("LATCHKEY_DATA_DIR", &data.display().to_string())]),
        );
        assert_eq!(out.status.code(), Some(2), "{name}: {}", out.stderr);
        let stderr = out.stderr.trim();
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(&config), "{name}: {stderr}");
        assert!(stderr.contains(wanted), "{name}: {stderr}");
        assert!(!data.exists(), "{name} wrote {}", data.display());
    }
    let missing = run_cli(
        &["--config", "/nonexistent/latchkey.toml", "migrate"],
        "",
        &[],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        missing.stderr.contains("/nonexistent/latchkey.toml"),
        "{}",
        missing.stderr
    );

    let key = write(dir.path(), "k", &"ab".repeat(32));
    let both = run_cli(
        &["migrate"],
        "",
        &env(&[
            ("LATCHKEY_SECRET_KEY", &"ab".repeat(32)),
            ("LATCHKEY_SECRET_KEY_FILE", &key),
        ]),
    );
    assert_eq!(both.status.code(), Some(2));
    assert!(
        both.stderr
            .contains("LATCHKEY_SECRET_KEY and LATCHKEY_SECRET_KEY_FILE"),
        "{}",
        both.stderr
    );
}

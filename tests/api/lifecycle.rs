//! The process as a service manager sees it: SIGTERM drains (readiness fails at once, requests
//! in flight finish), `--version` names the commit, completions and a man page come from the
//! command line's definition, and each subcommand's help lists only the settings it reads.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::helpers::run_cli;
use crate::served::{Served, http_get};

fn fresh_env(dir: &std::path::Path) -> Vec<(String, String)> {
    vec![(
        "LATCHKEY_DATA_DIR".to_owned(),
        dir.join("data").display().to_string(),
    )]
}

/// SIGTERM: `/readyz` answers 503 at once while the listener still serves (for
/// `LATCHKEY_SHUTDOWN_DELAY`), then the listener closes, and a request that was in flight
/// all along (its body still arriving) is answered before the process exits 0.
#[test]
fn sigterm_fails_readiness_at_once_and_finishes_requests_in_flight() {
    let work = tempfile::tempdir().unwrap();
    let mut env = fresh_env(work.path());
    env.push(("LATCHKEY_SHUTDOWN_DELAY".into(), "2".into()));
    env.push(("LATCHKEY_WORKERS".into(), "2".into()));
    let mut served = Served::start(&env, &[]);
    let (status, _) = http_get(served.port, "/readyz").unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // A token request whose body has not all arrived: in flight.
    let body = "grant_type=client_credentials&client_id=nobody&client_secret=x";
    let mut in_flight = TcpStream::connect(("127.0.0.1", served.port)).unwrap();
    write!(
        in_flight,
        "POST /oauth/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    in_flight.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let signalled = Instant::now();
    served.signal("TERM");
    // Readiness fails at once; liveness and everything else are still served.
    let ready = loop {
        let (status, body) = http_get(served.port, "/readyz").unwrap();
        if status.starts_with("HTTP/1.1 503") || signalled.elapsed() > Duration::from_secs(1) {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(ready.0.starts_with("HTTP/1.1 503"), "{ready:?}");
    assert!(ready.1.contains("\"draining\""), "{ready:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "not at once: {:?}",
        signalled.elapsed()
    );
    let (health, _) = http_get(served.port, "/healthz").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let (_, metrics) = http_get(served.metrics_port, "/metrics").unwrap();
    assert!(metrics.contains("latchkey_draining 1"), "{metrics}");

    // After the delay the listener is closed to new connections.
    let closed = loop {
        if TcpStream::connect(("127.0.0.1", served.port)).is_err() {
            break true;
        }
        if signalled.elapsed() > Duration::from_secs(6) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(closed, "the listener still accepts after the delay");
    assert!(
        signalled.elapsed() >= Duration::from_millis(1900),
        "closed before the delay: {:?}",
        signalled.elapsed()
    );
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );

    // The request in flight gets its whole answer.
    in_flight.write_all(&body.as_bytes()[10..]).unwrap();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("invalid_client"), "{answer}");

    let status = served.wait(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

/// Ctrl-C at a terminal (SIGINT) stops without the delay.
#[test]
fn sigint_stops_without_the_delay() {
    let work = tempfile::tempdir().unwrap();
    let mut env = fresh_env(work.path());
    env.push(("LATCHKEY_SHUTDOWN_DELAY".into(), "30".into()));
    let mut served = Served::start(&env, &[]);
    served.signal("INT");
    let status = served.wait(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[test]
fn version_names_the_release_and_the_commit() {
    let out = run_cli(&["--version"], "", &[]);
    assert!(out.success());
    let line = out.stdout.trim();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        line.starts_with(&format!("latchkey {version} (commit ")),
        "{line}"
    );
    let commit = line
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap_or_default();
    // Built from a git checkout, it is that checkout's commit.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(head) = head
        && head.status.success()
    {
        assert_eq!(
            commit,
            String::from_utf8_lossy(&head.stdout).trim(),
            "{line}"
        );
    } else {
        assert_eq!(commit, "unknown");
    }
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let bash = run_cli(&["completions", "bash"], "", &[]);
    assert!(bash.success(), "{}", bash.stderr);
    assert!(
        bash.stdout.contains("complete -F _latchkey"),
        "{}",
        bash.stdout
    );
    assert!(bash.stdout.contains("backup"), "subcommands are completed");
    // The script is valid bash.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("latchkey.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(checked.success());

    let zsh = run_cli(&["completions", "zsh"], "", &[]);
    assert!(
        zsh.stdout.starts_with("#compdef latchkey"),
        "{}",
        zsh.stdout
    );
    let fish = run_cli(&["completions", "fish"], "", &[]);
    assert!(
        fish.stdout.contains("complete -c latchkey"),
        "{}",
        fish.stdout
    );
    let bad = run_cli(&["completions", "tcsh"], "", &[]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_man_page_is_generated_from_the_command_line() {
    let out = run_cli(&["man"], "", &[]);
    assert!(out.success(), "{}", out.stderr);
    let page = &out.stdout;
    assert!(page.starts_with(".ie \\n(.g .ds Aq"), "not roff: {page}");
    assert!(page.contains(".TH latchkey 1"), "{page}");
    for wanted in [
        "serve",
        "backup",
        "completions",
        ".SH ENVIRONMENT",
        "LATCHKEY_CONFIG",
        "LATCHKEY_SECRET_KEY_FILE",
        "Exit codes",
    ] {
        assert!(page.contains(wanted), "{wanted} missing");
    }
    // The man page's own subcommand is not advertised in help.
    let help = run_cli(&["--help"], "", &[]);
    assert!(!help.stdout.contains("\n  man "), "{}", help.stdout);
    assert!(help.stdout.contains("Exit codes:"), "{}", help.stdout);
}

/// Each subcommand's help lists the settings it reads, and only those (every setting is still
/// accepted after any subcommand).
#[test]
fn subcommand_help_lists_only_the_settings_it_uses() {
    let serve = run_cli(&["serve", "--help"], "", &[]);
    for flag in [
        "--bind",
        "--metrics-bind",
        "--otlp-endpoint",
        "--database-url",
    ] {
        assert!(serve.stdout.contains(flag), "serve: {flag}");
    }
    let create = run_cli(&["user", "create", "--help"], "", &[]);
    assert!(create.success());
    for flag in [
        "--database-url",
        "--data-dir",
        "--secret-key",
        "--smtp-url",
        "--config",
    ] {
        assert!(create.stdout.contains(flag), "user create: {flag}");
    }
    for flag in [
        "--bind",
        "--metrics-bind",
        "--issuer",
        "--access-token-ttl",
        "--workers",
    ] {
        assert!(!create.stdout.contains(flag), "user create lists {flag}");
    }
    let keys = run_cli(&["keys", "list", "--help"], "", &[]);
    assert!(keys.stdout.contains("--database-url"));
    assert!(!keys.stdout.contains("--smtp-url"), "{}", keys.stdout);
    let completions = run_cli(&["completions", "--help"], "", &[]);
    assert!(!completions.stdout.contains("--database-url"));
    // Still accepted where hidden.
    let accepted = run_cli(&["completions", "bash", "--bind", "127.0.0.1:1"], "", &[]);
    assert!(accepted.success(), "{}", accepted.stderr);
}

/// Exit codes as documented: 0, 1 when the command fails, 2 for bad usage or settings.
#[test]
fn exit_codes_are_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let env = fresh_env(dir.path());
    let rotated = run_cli(&["keys", "rotate", "--alg", "ES256"], "", &env);
    assert!(rotated.success(), "{}", rotated.stderr);
    let missing = run_cli(&["user", "mfa", "reset", "--username", "nobody"], "", &env);
    assert_eq!(missing.status.code(), Some(1), "{}", missing.stderr);
    let usage = run_cli(&["no-such-command"], "", &env);
    assert_eq!(usage.status.code(), Some(2));
}

/// `latchkey man --dir`: the top page (with its ENVIRONMENT section) and one page for each
/// subcommand it names, so `man latchkey-client-create` finds what SUBCOMMANDS points to.
#[test]
fn man_pages_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man");
    let out = run_cli(&["man", "--dir", &pages.display().to_string()], "", &[]);
    assert!(out.success(), "{}", out.stderr);
    let top = std::fs::read_to_string(pages.join("latchkey.1")).unwrap();
    assert!(top.contains(".SH ENVIRONMENT"), "the top page is ours");
    for page in [
        "latchkey-serve.1",
        "latchkey-backup.1",
        "latchkey-client-create.1",
        "latchkey-config-show.1",
        "latchkey-keys-rotate.1",
    ] {
        let text =
            std::fs::read_to_string(pages.join(page)).unwrap_or_else(|_| panic!("no {page}"));
        assert!(text.contains(".TH "), "{page} is not roff");
    }
}

/// A metrics port that is taken stops the start with one line naming the setting, before the
/// public listener serves anything.
#[test]
fn a_taken_metrics_port_stops_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut env = fresh_env(dir.path());
    env.push(("LATCHKEY_BIND".into(), "127.0.0.1:0".into()));
    env.push(("LATCHKEY_METRICS_BIND".into(), format!("127.0.0.1:{port}")));
    let out = run_cli(&["serve"], "", &env);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let last = out
        .stderr
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(
        last.starts_with(&format!(
            "latchkey: LATCHKEY_METRICS_BIND: cannot listen on 127.0.0.1:{port}"
        )),
        "{}",
        out.stderr
    );
}

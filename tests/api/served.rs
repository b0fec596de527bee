//! A `latchkey serve` process, as an operator runs it: the tests of signals, configuration
//! files, backups and trace export need the real binary, not an in-process server.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::latchkey_bin;

pub struct Served {
    pub child: Child,
    pub port: u16,
    pub metrics_port: u16,
    /// The lines logged up to and including "latchkey is listening".
    pub startup: Vec<String>,
    /// Standard error's lines after those (JSON).
    pub lines: mpsc::Receiver<String>,
}

impl Served {
    /// Starts `latchkey [args…] serve` with no inherited `LATCHKEY_*` variable but `env`: free
    /// ports, JSON logs, one worker unless `env` says otherwise. Waits for "latchkey is
    /// listening".
    pub fn start(env: &[(String, String)], args: &[&str]) -> Self {
        let mut command = Command::new(latchkey_bin());
        for (name, _) in std::env::vars() {
            if name.starts_with("LATCHKEY_") {
                command.env_remove(name);
            }
        }
        Self::start_command(command, env, args)
    }

    /// [`Self::start`] with a command the caller prepared (a working directory, a cleared
    /// environment).
    pub fn start_command(mut command: Command, env: &[(String, String)], args: &[&str]) -> Self {
        let mut child = command
            .env("LATCHKEY_BIND", "127.0.0.1:0")
            .env("LATCHKEY_METRICS_BIND", "127.0.0.1:0")
            .env("LATCHKEY_LOG_FORMAT", "json")
            .env("LATCHKEY_LOG", "info")
            .env("LATCHKEY_WORKERS", "1")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let (port, metrics_port) = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("latchkey serve did not start: {seen:#?}"));
            let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
            seen.push(line);
            if parsed["message"] == "latchkey is listening" {
                break (
                    parsed["port"].as_u64().unwrap() as u16,
                    parsed["metrics_port"].as_u64().unwrap() as u16,
                );
            }
        };
        Self {
            child,
            port,
            metrics_port,
            startup: seen,
            lines: rx,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends `signal` (`TERM`, `INT`) to the process.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit, at most `within`.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < within, "did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next log line (JSON) for which `wanted` holds, within `within`.
    pub fn line(&self, within: Duration, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + within;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
            if wanted(&parsed) {
                return Some(parsed);
            }
        }
        None
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET on a new connection: the status line and the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The value of the Prometheus series `name` whose labels include every pair of `labels`,
/// summed over the series that match (0 when there is none).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            (series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

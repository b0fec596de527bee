//! Headless Chromium through chromedriver: finding them (or saying the tests are skipped),
//! starting one private browser per journey, widths, JavaScript on or off, keyboard input,
//! full-page screenshots.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;

/// One browser at a time: each is a few processes, and the machine may have two cores.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The two widths every journey runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    Desktop,
    Phone,
}

impl Width {
    pub fn name(self) -> &'static str {
        match self {
            Width::Desktop => "desktop",
            Width::Phone => "phone",
        }
    }

    /// CSS pixels: a laptop screen, and an iPhone 12–15's viewport.
    fn size(self) -> (u32, u32) {
        match self {
            Width::Desktop => (1280, 900),
            Width::Phone => (390, 844),
        }
    }
}

/// `chromedriver` and the browser it drives.
pub struct Tools {
    chromedriver: PathBuf,
    chromium: PathBuf,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn find_tools() -> Result<Tools, String> {
    let chromedriver = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| on_path(&["chromedriver"]))
        .ok_or("chromedriver is not installed (Debian: apt-get install chromium-driver)")?;
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| on_path(&["chromium", "chromium-browser", "google-chrome"]))
        .ok_or("Chromium is not installed (Debian: apt-get install chromium)")?;
    Ok(Tools {
        chromedriver,
        chromium,
    })
}

/// Written straight to the terminal: the test harness captures `eprintln!` of passing tests,
/// and a skip must be seen.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The browser tools, or `None` after saying why the test is skipped. Under `CI=true` a missing
/// browser is a failure, so that CI cannot pass without having run the journey.
pub fn tools_or_skip(test: &str) -> Option<Tools> {
    let opt_out = std::env::var("TEST_BROWSER").unwrap_or_default();
    if matches!(opt_out.as_str(), "0" | "off" | "false" | "no") {
        say(&format!(
            "skipped: {test}: TEST_BROWSER={opt_out} (CI runs the browser tests in a step of their own)"
        ));
        return None;
    }
    match find_tools() {
        Ok(tools) => Some(tools),
        Err(why)
            if std::env::var("CI").is_ok_and(|v| matches!(v.as_str(), "true" | "1" | "yes")) =>
        {
            panic!("CI=true and {why}; .ci/run installs it")
        }
        Err(why) => {
            say(&format!(
                "skipped: {test}: {why}; the browser tests are opt-in on this machine"
            ));
            None
        }
    }
}

/// One browser session with its own chromedriver and a fresh profile, gone when dropped.
pub struct Browser {
    pub client: Client,
    pub width: Width,
    pub js: bool,
    /// Fill in and press things with the keyboard alone (Tab, typing, Space, Enter), never the
    /// mouse. The runs without JavaScript do.
    pub keyboard_only: bool,
    driver: Child,
    log: PathBuf,
    _profile: TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl Browser {
    pub async fn launch(tools: &Tools, width: Width, js: bool) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let log = profile.path().join("chromedriver.log");
        let port = free_port();
        let driver = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", tools.chromedriver.display()));
        let webdriver = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = reqwest::get(format!("{webdriver}/status")).await.ok();
            if let Some(res) = ready
                && res.status().is_success()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer on {webdriver}:\n{}",
                tail(&log)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let (w, h) = width.size();
        let data_dir = profile.path().join("chromium");
        let mut prefs = serde_json::Map::new();
        if !js {
            // What a person gets by blocking JavaScript in the browser's site settings.
            prefs.insert(
                "profile.managed_default_content_settings.javascript".into(),
                json!(2),
            );
        }
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            "--lang=en-GB".to_owned(),
            format!("--window-size={w},{h}"),
            format!("--user-data-dir={}", data_dir.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": tools.chromium, "args": args, "prefs": prefs}),
        );
        let client =
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&webdriver)
                .await
            {
                Ok(client) => client,
                Err(e) => panic!("Chromium did not start: {e}\n{}", tail(&log)),
            };
        let browser = Browser {
            client,
            width,
            js,
            keyboard_only: !js,
            driver,
            log,
            _profile: profile,
        };
        // The viewport is set exactly (a window has a minimum width; a phone is narrower).
        browser
            .cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": w, "height": h, "deviceScaleFactor": 1, "mobile": width == Width::Phone}),
            )
            .await;
        browser
    }

    /// A name for this run: `desktop`, `phone-no-js`.
    pub fn label(&self) -> String {
        if self.js {
            self.width.name().to_owned()
        } else {
            format!("{}-no-js", self.width.name())
        }
    }

    /// chromedriver's log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// A Chrome DevTools Protocol command, through chromedriver.
    pub async fn cdp(&self, cmd: &'static str, params: Value) -> Value {
        self.client
            .issue_cmd(Cdp { cmd, params })
            .await
            .unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    /// Gives the browser a virtual platform authenticator (WebDriver's WebAuthn extension,
    /// `POST /session/{id}/webauthn/authenticator`): a passkey store with user verification
    /// that always succeeds, as Touch ID or Windows Hello would after the person's touch.
    pub async fn add_virtual_authenticator(&self) -> String {
        let id = self
            .client
            .issue_cmd(VirtualAuthenticator)
            .await
            .unwrap_or_else(|e| panic!("adding a virtual authenticator: {e}"));
        id.as_str().unwrap_or_default().to_owned()
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("no {css} on {}: {e}", self.path().await),
        }
    }

    pub async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// What the field holds now (its `value` property).
    pub async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// The field labelled `label`, found through its `<label for>` as a person (or a screen
    /// reader) finds it.
    pub async fn field(&self, label: &str) -> Element {
        let labels = self
            .client
            .find_all(Locator::Css("label[for]"))
            .await
            .unwrap();
        for l in labels {
            let text = l.text().await.unwrap();
            if text.trim() == label || text.trim().starts_with(&format!("{label} ")) {
                let id = l.attr("for").await.unwrap().unwrap_or_default();
                return self.find(&format!("#{id}")).await;
            }
        }
        panic!("no field labelled {label:?} on {}", self.path().await)
    }

    /// Types into the field labelled `label`, replacing what it held.
    pub async fn fill(&self, label: &str, value: &str) {
        let field = self.field(label).await;
        if self.keyboard_only {
            self.tab_to_element(&field).await;
            self.chord(Key::Control, 'a').await;
            self.press(Key::Backspace).await;
            self.type_text(value).await;
        } else {
            field.clear().await.unwrap();
            field.send_keys(value).await.unwrap();
        }
    }

    /// Ticks or unticks the checkbox with this `id`: a click on its label, or Tab to it and
    /// Space.
    pub async fn toggle(&self, id: &str) {
        if self.keyboard_only {
            self.tab_to_element(&self.find(&format!("#{id}")).await)
                .await;
            self.press(Key::Space).await;
        } else {
            self.find(&format!("label[for={id}]"))
                .await
                .click()
                .await
                .unwrap();
        }
    }

    /// Picks the radio button `id`: a click on its label, or, as Tab stops only at a group's
    /// checked button, Tab to that one and the arrow keys.
    pub async fn pick(&self, id: &str) {
        let target = self.find(&format!("#{id}")).await;
        if !self.keyboard_only {
            self.toggle(id).await;
            return;
        }
        let name = target.attr("name").await.unwrap().unwrap_or_default();
        let checked = self.find(&format!("input[name={name}]:checked")).await;
        self.tab_to_element(&checked).await;
        for _ in 0..10 {
            if target.is_selected().await.unwrap() {
                return;
            }
            self.press(Key::Down).await;
        }
        panic!("the arrow keys never picked #{id}");
    }

    /// Chooses the option `value` of the list labelled `label`: with the mouse, or with the
    /// arrow keys.
    pub async fn choose(&self, label: &str, value: &str) {
        let select = self.field(label).await;
        if !self.keyboard_only {
            select.select_by_value(value).await.unwrap();
            return;
        }
        self.tab_to_element(&select).await;
        for key in [Key::Up, Key::Down] {
            for _ in 0..20 {
                if select.prop("value").await.unwrap().as_deref() == Some(value) {
                    return;
                }
                self.press(key).await;
            }
        }
        panic!("the arrow keys never chose {value} in {label:?}");
    }

    /// Activates the button or link whose text is `text` (in the page's content first, then in
    /// the header's navigation): a click, or Tab to it and Enter.
    pub async fn click(&self, text: &str) {
        for area in ["main", "header"] {
            let candidates = self
                .client
                .find_all(Locator::Css(&format!("{area} button, {area} a")))
                .await
                .unwrap();
            for c in candidates {
                if c.text().await.unwrap().trim() == text && c.is_displayed().await.unwrap() {
                    if self.keyboard_only {
                        self.tab_to_element(&c).await;
                        self.press(Key::Enter).await;
                    } else {
                        c.click().await.unwrap();
                    }
                    return;
                }
            }
        }
        panic!("nothing to click called {text:?} on {}", self.path().await)
    }

    /// Presses `key` with `modifier` held (Control+A).
    pub async fn chord(&self, modifier: Key, key: char) {
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down {
                value: modifier.into(),
            })
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key })
            .then(KeyAction::Up {
                value: modifier.into(),
            });
        self.client.perform_actions(actions).await.unwrap();
    }

    /// Presses and releases one key on whatever has the focus.
    pub async fn press(&self, key: Key) {
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key.into() })
            .then(KeyAction::Up { value: key.into() });
        self.client.perform_actions(actions).await.unwrap();
    }

    /// Types text into whatever has the focus, one key at a time.
    pub async fn type_text(&self, text: &str) {
        let mut actions = KeyActions::new("keyboard".into());
        for c in text.chars() {
            actions = actions
                .then(KeyAction::Down { value: c })
                .then(KeyAction::Up { value: c });
        }
        self.client.perform_actions(actions).await.unwrap();
    }

    /// Takes the focus back to the top of the page, as a fresh page load leaves it. (A blur
    /// alone would leave Tab's starting point at the element that had the focus.)
    pub async fn reset_focus(&self) {
        self.client
            .execute(
                "const b = document.body; b.setAttribute('tabindex', '-1'); b.focus(); b.removeAttribute('tabindex'); window.scrollTo(0, 0);",
                vec![],
            )
            .await
            .unwrap();
    }

    /// Presses Tab until the element matching `css` has the focus; fails if it never does.
    pub async fn tab_to(&self, css: &str) {
        self.tab_until(
            "return !!document.activeElement && document.activeElement.matches(arguments[0]);",
            json!(css),
            css,
        )
        .await;
    }

    /// From the top of the page, presses Tab until `element` has the focus.
    pub async fn tab_to_element(&self, element: &Element) {
        self.reset_focus().await;
        let what = element.html(false).await.unwrap_or_default();
        let what: String = what.chars().take(80).collect();
        self.tab_until(
            "return document.activeElement === arguments[0];",
            serde_json::to_value(element).unwrap(),
            &what,
        )
        .await;
    }

    async fn tab_until(&self, script: &str, arg: Value, what: &str) {
        for _ in 0..80 {
            self.press(Key::Tab).await;
            let focused = self
                .client
                .execute(script, vec![arg.clone()])
                .await
                .unwrap();
            if focused == json!(true) {
                return;
            }
        }
        panic!(
            "Tab never reached {what} on {} with the keyboard",
            self.path().await
        )
    }

    /// Waits until the page's path starts with `prefix` (after a form posts and redirects).
    pub async fn wait_for_path(&self, prefix: &str) {
        let started = Instant::now();
        loop {
            let path = self.path().await;
            if path.starts_with(prefix) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "still on {path}, expected {prefix}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (after a click that posts a form) until an element matching `css` is on the page
    /// and, when `text` is given, has that text.
    pub async fn wait_for(&self, css: &str, text: Option<&str>) {
        let started = Instant::now();
        loop {
            let found = self
                .client
                .find_all(Locator::Css(css))
                .await
                .unwrap_or_default();
            if let Some(first) = found.first() {
                match text {
                    None => return,
                    Some(want) => {
                        if first.text().await.unwrap_or_default().trim() == want {
                            return;
                        }
                    }
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "no {css} {text:?} on {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A full-page PNG of what is on screen now, at this run's width.
    pub async fn screenshot(&self, path: &Path) {
        if let Err(e) = self.try_screenshot(path).await {
            panic!("screenshot {}: {e}", path.display());
        }
    }

    /// `screenshot` that reports a failure instead of panicking: after a failed step the browser
    /// may be gone, and the step's own message matters more.
    pub async fn try_screenshot(&self, path: &Path) -> Result<(), String> {
        let cdp = |cmd: &'static str, params: Value| async move {
            self.client
                .issue_cmd(Cdp { cmd, params })
                .await
                .map_err(|e| format!("{cmd}: {e}"))
        };
        let metrics = cdp("Page.getLayoutMetrics", json!({})).await?;
        let (w, h) = self.width.size();
        let content = metrics["cssContentSize"]["height"].as_f64().unwrap_or(0.0);
        let height = content.max(f64::from(h)).ceil();
        let shot = cdp(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": w, "height": height, "scale": 1}
            }),
        )
        .await?;
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, png).map_err(|e| e.to_string())
    }

    /// Ends the session (Chromium exits) and chromedriver.
    pub async fn quit(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// chromedriver's `goog/cdp/execute`: a DevTools command for the current page.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"cmd": self.cmd, "params": self.params}).to_string()),
        )
    }
}

/// WebDriver's WebAuthn extension (W3C WebAuthn Level 2, §11.3): a CTAP2 authenticator inside
/// the device, holding discoverable credentials, verifying the user.
#[derive(Debug)]
struct VirtualAuthenticator;

impl WebDriverCompatibleCommand for VirtualAuthenticator {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(
                json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserVerified": true,
                    "isUserConsenting": true,
                })
                .to_string(),
            ),
        )
    }
}

//! Page templates and static files, compiled into the binary so that `latchkey` runs from any
//! folder with nothing beside it.
//!
//! Every template is a `.html` file, so Tera escapes every value; none is ever marked `safe`.

use tera::Tera;

/// (name, source) of every template, embedded at build time.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("message.html", include_str!("../templates/message.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("signup.html", include_str!("../templates/signup.html")),
    (
        "signup_sent.html",
        include_str!("../templates/signup_sent.html"),
    ),
    (
        "signup_finish.html",
        include_str!("../templates/signup_finish.html"),
    ),
    ("forgot.html", include_str!("../templates/forgot.html")),
    ("reset.html", include_str!("../templates/reset.html")),
    ("account.html", include_str!("../templates/account.html")),
    (
        "login_verify.html",
        include_str!("../templates/login_verify.html"),
    ),
    (
        "account/security.html",
        include_str!("../templates/account/security.html"),
    ),
    (
        "account/totp_setup.html",
        include_str!("../templates/account/totp_setup.html"),
    ),
    (
        "account/passkey_add.html",
        include_str!("../templates/account/passkey_add.html"),
    ),
    (
        "account/passkey_remove.html",
        include_str!("../templates/account/passkey_remove.html"),
    ),
    (
        "account/passkeys_list.html",
        include_str!("../templates/account/passkeys_list.html"),
    ),
    (
        "account/recovery_codes.html",
        include_str!("../templates/account/recovery_codes.html"),
    ),
    (
        "account/totp_remove.html",
        include_str!("../templates/account/totp_remove.html"),
    ),
    (
        "emails/live_without_factor.txt",
        include_str!("../templates/emails/live_without_factor.txt"),
    ),
    (
        "emails/live_without_factor.html",
        include_str!("../templates/emails/live_without_factor.html"),
    ),
    (
        "emails/security_event.txt",
        include_str!("../templates/emails/security_event.txt"),
    ),
    (
        "emails/security_event.html",
        include_str!("../templates/emails/security_event.html"),
    ),
    (
        "account/authorized.html",
        include_str!("../templates/account/authorized.html"),
    ),
    (
        "account/revoke_scope.html",
        include_str!("../templates/account/revoke_scope.html"),
    ),
    (
        "account/revoke.html",
        include_str!("../templates/account/revoke.html"),
    ),
    (
        "account/undo_email.html",
        include_str!("../templates/account/undo_email.html"),
    ),
    (
        "oauth/error.html",
        include_str!("../templates/oauth/error.html"),
    ),
    (
        "oauth/consent.html",
        include_str!("../templates/oauth/consent.html"),
    ),
    (
        "portal/list.html",
        include_str!("../templates/portal/list.html"),
    ),
    (
        "portal/form.html",
        include_str!("../templates/portal/form.html"),
    ),
    (
        "portal/connect.html",
        include_str!("../templates/portal/connect.html"),
    ),
    (
        "portal/show.html",
        include_str!("../templates/portal/show.html"),
    ),
    (
        "portal/reauth.html",
        include_str!("../templates/portal/reauth.html"),
    ),
    (
        "portal/secret.html",
        include_str!("../templates/portal/secret.html"),
    ),
    (
        "portal/keys.html",
        include_str!("../templates/portal/keys.html"),
    ),
    (
        "portal/key_remove.html",
        include_str!("../templates/portal/key_remove.html"),
    ),
    (
        "portal/activity.html",
        include_str!("../templates/portal/activity.html"),
    ),
    (
        "emails/email_changed.txt",
        include_str!("../templates/emails/email_changed.txt"),
    ),
    (
        "emails/email_changed.html",
        include_str!("../templates/emails/email_changed.html"),
    ),
    (
        "emails/sign_up.txt",
        include_str!("../templates/emails/sign_up.txt"),
    ),
    (
        "emails/sign_up.html",
        include_str!("../templates/emails/sign_up.html"),
    ),
    (
        "emails/already_registered.txt",
        include_str!("../templates/emails/already_registered.txt"),
    ),
    (
        "emails/already_registered.html",
        include_str!("../templates/emails/already_registered.html"),
    ),
    (
        "emails/verify_email.txt",
        include_str!("../templates/emails/verify_email.txt"),
    ),
    (
        "emails/verify_email.html",
        include_str!("../templates/emails/verify_email.html"),
    ),
    (
        "emails/reset_password.txt",
        include_str!("../templates/emails/reset_password.txt"),
    ),
    (
        "emails/reset_password.html",
        include_str!("../templates/emails/reset_password.html"),
    ),
    (
        "emails/new_sign_in.txt",
        include_str!("../templates/emails/new_sign_in.txt"),
    ),
    (
        "emails/new_sign_in.html",
        include_str!("../templates/emails/new_sign_in.html"),
    ),
    (
        "emails/secret_event.txt",
        include_str!("../templates/emails/secret_event.txt"),
    ),
    (
        "emails/secret_event.html",
        include_str!("../templates/emails/secret_event.html"),
    ),
    (
        "emails/key_event.txt",
        include_str!("../templates/emails/key_event.txt"),
    ),
    (
        "emails/key_event.html",
        include_str!("../templates/emails/key_event.html"),
    ),
];

/// Builds the template set. Fails only if a template does not parse, which a test catches.
pub fn load() -> Result<Tera, tera::Error> {
    let mut tera = Tera::default();
    // Tera's own `urlencode` comes with its `builtins` feature and its dependencies; this one
    // is the query-value encoding the routes use (`url::form_urlencoded`).
    tera.register_filter("urlencode", urlencode_filter);
    tera.register_filter("time", TimeFilter);
    tera.add_raw_templates(TEMPLATES.iter().copied())?;
    tera.autoescape_on(vec![".html"]);
    Ok(tera)
}

fn urlencode_filter(
    value: &tera::Value,
    _: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let text = value
        .as_str()
        .ok_or_else(|| tera::Error::msg("urlencode takes a string"))?;
    Ok(tera::Value::String(
        url::form_urlencoded::byte_serialize(text.as_bytes()).collect(),
    ))
}

/// `{{ when | time }}`: a time the pages write as `2026-12-07 14:30 UTC` becomes
/// `<time datetime="2026-12-07T14:30:00Z">2026-12-07 14:30 UTC</time>`, which `time.js` shows in
/// the viewer's time zone with "3 hours ago" (without JavaScript, UTC stays). A date alone
/// (`2026-12-07`) gets `datetime` too and stays as written. Anything else is escaped as text.
struct TimeFilter;

impl tera::Filter for TimeFilter {
    fn filter(
        &self,
        value: &tera::Value,
        _: &std::collections::HashMap<String, tera::Value>,
    ) -> tera::Result<tera::Value> {
        let text = value.as_str().unwrap_or_default();
        let html = if let Ok(at) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M UTC")
        {
            format!(
                "<time datetime=\"{}\">{}</time>",
                at.format("%Y-%m-%dT%H:%M:00Z"),
                at.format("%Y-%m-%d %H:%M UTC")
            )
        } else if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            let day = day.format("%Y-%m-%d");
            format!("<time datetime=\"{day}\">{day}</time>")
        } else {
            tera::escape_html(text)
        };
        Ok(tera::Value::String(html))
    }

    fn is_safe(&self) -> bool {
        true
    }
}

/// A static file: its path under `/static/`, content type and bytes.
pub struct StaticFile {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

pub const STATIC_FILES: &[StaticFile] = &[
    StaticFile {
        path: "css/latchkey.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../static/css/latchkey.css"),
    },
    StaticFile {
        path: "js/copy.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/js/copy.js"),
    },
    StaticFile {
        path: "js/time.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/js/time.js"),
    },
    StaticFile {
        path: "js/passkey.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/js/passkey.js"),
    },
    StaticFile {
        path: "js/logo.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/js/logo.js"),
    },
];

#[cfg(test)]
mod tests {
    /// Every file under `templates/` is compiled in, so none is missing at run time.
    #[test]
    fn every_template_file_is_registered() {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    out.push(
                        path.strip_prefix(root)
                            .unwrap()
                            .to_string_lossy()
                            .replace('\\', "/"),
                    );
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut files = Vec::new();
        walk(&root, &root, &mut files);
        files.sort();
        let mut registered: Vec<String> = super::TEMPLATES
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .collect();
        registered.sort();
        assert_eq!(files, registered);
    }

    #[test]
    fn templates_parse_and_escape() {
        let tera = super::load().unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("issuer", "<script>");
        let html = tera.render("home.html", &ctx).unwrap();
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}

#[cfg(test)]
mod time_filter_tests {
    use tera::Filter as _;

    fn shown(text: &str) -> String {
        super::TimeFilter
            .filter(&tera::Value::String(text.into()), &Default::default())
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn times_and_dates_become_time_elements_and_anything_else_text() {
        assert_eq!(
            shown("2026-12-07 14:30 UTC"),
            "<time datetime=\"2026-12-07T14:30:00Z\">2026-12-07 14:30 UTC</time>"
        );
        assert_eq!(
            shown("2026-12-07"),
            "<time datetime=\"2026-12-07\">2026-12-07</time>"
        );
        assert_eq!(shown("<b>soon</b>"), "&lt;b&gt;soon&lt;&#x2F;b&gt;");
        assert_eq!(shown(""), "");
    }
}

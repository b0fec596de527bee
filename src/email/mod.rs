//! Outgoing email: account verification, password reset, and security notices.
//!
//! Three transports: SMTP when `LATCHKEY_SMTP_URL` is set; otherwise each message is written as
//! an `.eml` file under `<data-dir>/mail/` and its path logged; and an in-memory outbox that the
//! tests read. Messages are templates with a text and an HTML body.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lettre::message::{Mailbox, MultiPart};
use lettre::{FileTransport, Message, SmtpTransport, Transport as _};
use serde::Serialize;
use tera::Tera;

/// One message, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Messages "sent" by the in-memory transport.
#[derive(Debug, Clone, Default)]
pub struct Outbox(Arc<Mutex<Vec<Email>>>);

impl Outbox {
    pub fn messages(&self) -> Vec<Email> {
        match self.0.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The latest message to `address`.
    pub fn last_to(&self, address: &str) -> Option<Email> {
        self.messages().into_iter().rev().find(|m| m.to == address)
    }

    fn push(&self, email: Email) {
        match self.0.lock() {
            Ok(mut guard) => guard.push(email),
            Err(poisoned) => poisoned.into_inner().push(email),
        }
    }
}

#[derive(Clone)]
enum Transport {
    Smtp(Box<SmtpTransport>),
    Files(PathBuf),
    Memory(Outbox),
}

#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("LATCHKEY_SMTP_URL: {0}")]
    Config(String),
    #[error("invalid address: {0}")]
    Address(String),
    #[error("building the message failed: {0}")]
    Build(String),
    #[error("sending failed: {0}")]
    Send(String),
    #[error("rendering the message failed: {0}")]
    Template(#[from] tera::Error),
}

impl Mailer {
    /// SMTP if a URL is given, else `.eml` files in `mail_dir`.
    pub fn new(
        smtp_url: Option<&url::Url>,
        mail_dir: PathBuf,
        from: Mailbox,
    ) -> Result<Self, MailError> {
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(Box::new(
                SmtpTransport::from_url(url.as_str())
                    .map_err(|e| MailError::Config(e.to_string()))?
                    .build(),
            )),
            None => Transport::Files(mail_dir),
        };
        Ok(Self { transport, from })
    }

    /// Where messages go when there is no SMTP server: the folder their `.eml` files are
    /// written to (the home page tells a new operator).
    pub fn mail_folder(&self) -> Option<&std::path::Path> {
        match &self.transport {
            Transport::Files(dir) => Some(dir),
            _ => None,
        }
    }

    /// Whether messages go out through an SMTP server.
    pub fn uses_smtp(&self) -> bool {
        matches!(self.transport, Transport::Smtp(_))
    }

    /// A mailer that keeps messages in memory, for tests.
    pub fn memory(from: Mailbox) -> (Self, Outbox) {
        let outbox = Outbox::default();
        (
            Self {
                transport: Transport::Memory(outbox.clone()),
                from,
            },
            outbox,
        )
    }

    /// Sends a rendered message off the async executor (SMTP and files block), for a page
    /// that goes on whatever happens: a failure, to render or to send, is logged, never shown.
    pub async fn deliver(&self, message: Result<Email, MailError>) {
        let mailer = self.clone();
        let result = match message {
            Ok(email) => tokio::task::spawn_blocking(move || mailer.send(&email))
                .await
                .unwrap_or_else(|_| Err(MailError::Send("cancelled".into()))),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "sending an email failed");
        }
    }

    /// Sends one message. Blocking (network or disk): call from a blocking thread, or use
    /// [`Self::deliver`].
    pub fn send(&self, email: &Email) -> Result<(), MailError> {
        if let Transport::Memory(outbox) = &self.transport {
            outbox.push(email.clone());
            return Ok(());
        }
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| MailError::Address(email.to.clone()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| MailError::Build(e.to_string()))?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .send(&message)
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
            Transport::Files(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| MailError::Send(e.to_string()))?;
                let id = FileTransport::new(dir)
                    .send(&message)
                    .map_err(|e| MailError::Send(e.to_string()))?;
                tracing::info!(path = %dir.join(format!("{id}.eml")).display(), to = %email.to, subject = %email.subject, "email written to a file (no LATCHKEY_SMTP_URL)");
                Ok(())
            }
            Transport::Memory(_) => Ok(()),
        }
    }
}

/// The messages Latchkey sends. Each renders `emails/<name>.txt` and `emails/<name>.html`.
pub enum Template<'a> {
    /// The link that finishes a sign-up, to an address with no account.
    SignUp {
        link: &'a str,
        hours: i64,
    },
    /// A sign-up was asked for an address that has an account.
    AlreadyRegistered {
        name: &'a str,
        username: &'a str,
        sign_in: &'a str,
        reset: &'a str,
    },
    VerifyEmail {
        name: &'a str,
        link: &'a str,
    },
    ResetPassword {
        name: &'a str,
        link: &'a str,
    },
    NewSignIn {
        name: &'a str,
        when: &'a str,
        ip: &'a str,
        /// How: "with your password and an authenticator app code".
        how: &'a str,
    },
    SecretEvent {
        name: &'a str,
        app: &'a str,
        action: &'a str,
        when: &'a str,
        ip: &'a str,
    },
    /// An application's public keys (`private_key_jwt`) changed: `change` says how.
    KeyEvent {
        name: &'a str,
        app: &'a str,
        change: &'a str,
        when: &'a str,
        ip: &'a str,
    },
    /// The account's second factor changed (`mfa`): `change` says how.
    SecurityEvent {
        name: &'a str,
        change: &'a str,
        when: &'a str,
        ip: &'a str,
    },
    /// `LATCHKEY_REQUIRE_MFA_FOR_LIVE`: the account has live applications (`apps`, named) and
    /// no second factor; `link` is its security page.
    LiveWithoutFactor {
        name: &'a str,
        apps: &'a str,
        link: &'a str,
    },
    /// To the address an account just left: what happened, and the link that undoes it.
    EmailChanged {
        name: &'a str,
        username: &'a str,
        new_address: &'a str,
        when: &'a str,
        link: &'a str,
        hours: i64,
    },
}

impl Template<'_> {
    /// Renders the message for `to`.
    pub fn render(&self, templates: &Tera, to: &str) -> Result<Email, MailError> {
        let mut ctx = tera::Context::new();
        let (file, subject) = match self {
            Self::SignUp { link, hours } => {
                ctx.insert("link", link);
                ctx.insert("hours", hours);
                (
                    "sign_up",
                    "Finish creating your Latchkey account".to_owned(),
                )
            }
            Self::AlreadyRegistered {
                name,
                username,
                sign_in,
                reset,
            } => {
                ctx.insert("name", name);
                ctx.insert("username", username);
                ctx.insert("sign_in", sign_in);
                ctx.insert("reset", reset);
                (
                    "already_registered",
                    "Your Latchkey account already uses this address".to_owned(),
                )
            }
            Self::VerifyEmail { name, link } => {
                ctx.insert("name", name);
                ctx.insert("link", link);
                ("verify_email", "Confirm your email address".to_owned())
            }
            Self::ResetPassword { name, link } => {
                ctx.insert("name", name);
                ctx.insert("link", link);
                ("reset_password", "Reset your Latchkey password".to_owned())
            }
            Self::NewSignIn {
                name,
                when,
                ip,
                how,
            } => {
                ctx.insert("name", name);
                ctx.insert("when", when);
                ctx.insert("ip", ip);
                ctx.insert("how", how);
                (
                    "new_sign_in",
                    "New sign-in to your Latchkey account".to_owned(),
                )
            }
            Self::SecretEvent {
                name,
                app,
                action,
                when,
                ip,
            } => {
                ctx.insert("name", name);
                ctx.insert("app", app);
                ctx.insert("action", action);
                ctx.insert("when", when);
                ctx.insert("ip", ip);
                (
                    "secret_event",
                    format!("A client secret of {app} was {action}"),
                )
            }
            Self::SecurityEvent {
                name,
                change,
                when,
                ip,
            } => {
                ctx.insert("name", name);
                ctx.insert("change", change);
                ctx.insert("when", when);
                ctx.insert("ip", ip);
                (
                    "security_event",
                    "The sign-in security of your Latchkey account changed".to_owned(),
                )
            }
            Self::LiveWithoutFactor { name, apps, link } => {
                ctx.insert("name", name);
                ctx.insert("apps", apps);
                ctx.insert("link", link);
                (
                    "live_without_factor",
                    "Protect your live applications with a second factor".to_owned(),
                )
            }
            Self::KeyEvent {
                name,
                app,
                change,
                when,
                ip,
            } => {
                ctx.insert("name", name);
                ctx.insert("app", app);
                ctx.insert("change", change);
                ctx.insert("when", when);
                ctx.insert("ip", ip);
                ("key_event", format!("The public keys of {app} changed"))
            }
            Self::EmailChanged {
                name,
                username,
                new_address,
                when,
                link,
                hours,
            } => {
                ctx.insert("name", name);
                ctx.insert("username", username);
                ctx.insert("new_address", new_address);
                ctx.insert("when", when);
                ctx.insert("link", link);
                ctx.insert("hours", hours);
                (
                    "email_changed",
                    "The email address of your Latchkey account was changed".to_owned(),
                )
            }
        };
        Ok(Email {
            to: to.to_owned(),
            subject,
            text: templates.render(&format!("emails/{file}.txt"), &ctx)?,
            html: templates.render(&format!("emails/{file}.html"), &ctx)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            to: "merchant@example.com".into(),
            subject: "Confirm your email address".into(),
            text: "Open https://auth.example.com/verify-email/abc".into(),
            html: "<p><a href=\"https://auth.example.com/verify-email/abc\">Confirm</a></p>".into(),
        }
    }

    #[test]
    fn without_smtp_messages_become_eml_files() {
        let dir = tempfile::tempdir().unwrap();
        let mail_dir = dir.path().join("mail");
        let mailer = Mailer::new(
            None,
            mail_dir.clone(),
            "Latchkey <no-reply@example.com>".parse().unwrap(),
        )
        .unwrap();
        mailer.send(&email()).unwrap();
        let files: Vec<_> = std::fs::read_dir(&mail_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
        let raw = std::fs::read_to_string(&files[0]).unwrap();
        assert!(raw.contains("To: merchant@example.com"), "{raw}");
        assert!(raw.contains("Subject: Confirm your email address"));
        assert!(raw.contains("multipart/alternative"));
    }

    #[test]
    fn the_memory_outbox_keeps_messages_in_order() {
        let (mailer, outbox) = Mailer::memory("Latchkey <no-reply@example.com>".parse().unwrap());
        mailer.send(&email()).unwrap();
        let mut second = email();
        second.subject = "Second".into();
        mailer.send(&second).unwrap();
        assert_eq!(outbox.messages().len(), 2);
        assert_eq!(
            outbox.last_to("merchant@example.com").unwrap().subject,
            "Second"
        );
        assert!(outbox.last_to("other@example.com").is_none());
    }

    #[test]
    fn every_template_renders_with_its_values_escaped_in_html() {
        let tera = crate::templates::load().unwrap();
        let cases = [
            Template::VerifyEmail {
                name: "<b>Ann</b>",
                link: "https://x/verify",
            },
            Template::ResetPassword {
                name: "<b>Ann</b>",
                link: "https://x/reset",
            },
            Template::NewSignIn {
                name: "<b>Ann</b>",
                when: "now",
                ip: "127.0.0.1",
                how: "with your password",
            },
            Template::SecretEvent {
                name: "<b>Ann</b>",
                app: "Shop",
                action: "rotated",
                when: "now",
                ip: "127.0.0.1",
            },
            Template::SecurityEvent {
                name: "<b>Ann</b>",
                change: "an authenticator app was added",
                when: "now",
                ip: "127.0.0.1",
            },
            Template::LiveWithoutFactor {
                name: "<b>Ann</b>",
                apps: "Shop",
                link: "https://x/account/security",
            },
            Template::KeyEvent {
                name: "<b>Ann</b>",
                app: "Shop",
                change: "1 key added",
                when: "now",
                ip: "127.0.0.1",
            },
            Template::EmailChanged {
                name: "<b>Ann</b>",
                username: "ann",
                new_address: "new@example.com",
                when: "now",
                link: "https://x/account/email/undo/t",
                hours: 24,
            },
        ];
        for template in cases {
            let email = template.render(&tera, "ann@example.com").unwrap();
            assert!(email.text.contains("<b>Ann</b>"), "plain text is not HTML");
            assert!(
                email.html.contains("&lt;b&gt;Ann&lt;&#x2F;b&gt;"),
                "{}",
                email.html
            );
            assert!(!email.subject.is_empty());
        }
    }
}

//! Email through a real SMTP server. `.ci/run` starts one (aiosmtpd, writing a Maildir) and sets
//! `TEST_SMTP_URL` and `TEST_SMTP_MAILDIR`; elsewhere this test says it is skipped.

use std::path::Path;
use std::time::Duration;

use crate::helpers::{MERCHANT_PASSWORD, spawn_app_with};

/// Every message in the Maildir, undoing quoted-printable soft line breaks.
fn delivered(maildir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|m| {
            m.replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=")
        })
        .collect()
}

#[tokio::test]
async fn a_real_smtp_server_receives_the_confirmation_email() {
    let (Ok(url), Ok(maildir)) = (
        std::env::var("TEST_SMTP_URL"),
        std::env::var("TEST_SMTP_MAILDIR"),
    ) else {
        eprintln!(
            "skipped: set TEST_SMTP_URL and TEST_SMTP_MAILDIR to run against a real SMTP server (CI does)"
        );
        return;
    };
    let maildir = Path::new(&maildir).to_path_buf();
    let smtp = url::Url::parse(&url).unwrap();
    let app = spawn_app_with(|settings| {
        settings.smtp_url = Some(smtp.clone());
        Some(
            latchkey::email::Mailer::new(
                Some(&smtp),
                settings.data_dir.join("mail"),
                settings.mail_from.clone(),
            )
            .unwrap(),
        )
    })
    .await;
    let address = format!("smtp-{}@example.com", crate::helpers::hex_id());
    assert_eq!(
        app.post_form("/signup", "/signup", &[("email", &address)])
            .await
            .status(),
        200
    );

    let mut message = None;
    for _ in 0..100 {
        message = delivered(&maildir)
            .into_iter()
            .find(|m| m.contains(&address));
        if message.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let message = message.expect("the SMTP server received nothing for the new address");
    assert!(
        message.contains("Subject: Finish creating your Latchkey account"),
        "{message}"
    );
    assert!(
        message.contains("From: Latchkey <no-reply@latchkey.test>"),
        "{message}"
    );
    assert!(
        message.contains("multipart/alternative"),
        "text and HTML bodies: {message}"
    );
    let start = message
        .find(&format!("{}/signup/", app.address))
        .expect("no link");
    let link: String = message[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
        .collect();
    let path = app.path_of(&link);
    let res = app
        .post_form(
            &path,
            &path,
            &[
                ("username", "smtpuser"),
                ("name", "SMTP User"),
                ("password", MERCHANT_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let user = latchkey::db::models::User::find_by_username(&mut app.db.connect(), "smtpuser")
        .unwrap()
        .unwrap();
    assert!(
        user.email_verified_at.is_some(),
        "the emailed link confirmed the address"
    );
}

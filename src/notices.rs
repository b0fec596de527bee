//! Reminders by email that an operator's policy needs from an account.
//!
//! `LATCHKEY_REQUIRE_MFA_FOR_LIVE`: applications that went live before the rule keep working,
//! and their owner is told, on the portal (the Applications page) and here by email: at the
//! next clean-up round (`LATCHKEY_CLEANUP_INTERVAL`), and again every 30 days while the account
//! still has no second factor.
//! Each reminder is claimed in the database before it is sent ([`AccountNotice::claim`]), so a
//! fleet of instances sends it once.

use chrono::TimeDelta;

use crate::db::models::AccountNotice;
use crate::db::{self, DbError, Pool};
use crate::email::{Mailer, Template};

/// The reminder's kind in `account_notices`.
const LIVE_WITHOUT_FACTOR: &str = "live_without_factor";
/// How long before the reminder is sent again.
pub const RESEND_AFTER: TimeDelta = TimeDelta::days(30);

/// One reminder to send: to whom, and which of their applications are live.
struct Due {
    name: String,
    email: String,
    apps: Vec<String>,
}

/// Emails each owner of a live application whose account has no second factor, unless they
/// were reminded in the last 30 days. How many were sent.
pub async fn remind_live_without_factor(
    pool: &Pool,
    mailer: &Mailer,
    templates: &tera::Tera,
    issuer: &str,
) -> Result<usize, DbError> {
    let due = db::run(pool, |conn| {
        let now = db::now();
        // The rows come ordered by account: one group per owner.
        let mut owners: Vec<(crate::domain::UserId, Due)> = Vec::new();
        for (user_id, name, email, app) in AccountNotice::live_without_factor(conn)? {
            match owners.last_mut() {
                Some((id, owner)) if *id == user_id => owner.apps.push(app),
                _ => owners.push((
                    user_id,
                    Due {
                        name,
                        email: email.unwrap_or_default(),
                        apps: vec![app],
                    },
                )),
            }
        }
        let mut due = Vec::new();
        for (user_id, owner) in owners {
            // An account without an address cannot be written to (the portal still says it).
            if owner.email.is_empty() {
                continue;
            }
            if AccountNotice::claim(conn, user_id, LIVE_WITHOUT_FACTOR, now, now - RESEND_AFTER)? {
                due.push(owner);
            }
        }
        Ok::<_, DbError>(due)
    })
    .await?;
    let link = format!("{issuer}/account/security");
    for reminder in &due {
        let apps = reminder.apps.join(", ");
        let message = Template::LiveWithoutFactor {
            name: &reminder.name,
            apps: &apps,
            link: &link,
        }
        .render(templates, &reminder.email);
        mailer.deliver(message).await;
    }
    Ok(due.len())
}

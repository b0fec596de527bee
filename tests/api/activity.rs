//! The activity page: token requests counted per day and failed ones by error code and reason
//! (`oauth::outcomes`), and the audit log's filters, pages and CSV download.

use diesel::prelude::*;
use latchkey::db::models::{AuditEvent, Client};
use latchkey::db::schema::token_requests;
use serde_json::json;

use crate::helpers::{Html, TestApp, TestClient, spawn_app, spawn_app_with, spawn_browser};
use crate::portal::{APPS, create_app, merchant, valid_form};

fn rows(page: &Html, css: &str) -> usize {
    page.0
        .select(&scraper::Selector::parse(css).unwrap())
        .count()
}

async fn client_credentials(app: &TestApp, client: &TestClient) -> u16 {
    app.token_form(Some(client), &[("grant_type", "client_credentials")])
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn failed_token_requests_are_counted_by_error_and_reason_without_secrets() {
    // Counts written every second (the tests' default is an hour, so that no write lands in
    // the tests that count statements).
    let app = spawn_app_with(|settings| {
        settings.counts_interval = 1;
        None
    })
    .await;
    merchant(&app, "acme").await;
    let created = create_app(&app, &valid_form()).await;
    let show = format!("{APPS}/{}", created.client_id);
    let wrong = TestClient {
        client_id: created.client_id.clone(),
        secret: "lks_wrong-secret-do-not-log".into(),
        owner_id: 0,
    };
    let unknown = TestClient {
        client_id: "no-such-client".into(),
        secret: "lks_whatever".into(),
        owner_id: 0,
    };

    assert_eq!(client_credentials(&app, &created).await, 200);
    assert_eq!(client_credentials(&app, &created).await, 200);
    for _ in 0..3 {
        assert_eq!(client_credentials(&app, &wrong).await, 401);
    }
    // Not counted: no application of anyone's has this id.
    assert_eq!(client_credentials(&app, &unknown).await, 401);
    // A refused refresh token, in Revenue Monster's dialect.
    let res = app
        .token_json(
            Some(&created),
            json!({ "grantType": "refresh_token", "refreshToken": "not-a-token" }),
        )
        .await;
    assert_eq!(res.status(), 400);
    // A scope the application may not ask for.
    let res = app
        .token_form(
            Some(&created),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "manage_store"),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);

    // Written in the background within a few seconds, without anyone opening the page: what
    // another instance's page relies on.
    let counted = || {
        token_requests::table
            .select(token_requests::count)
            .load::<i64>(&mut app.db.connect())
            .unwrap()
            .iter()
            .sum::<i64>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while counted() < 7 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        counted(),
        7,
        "2 issued + 5 failed, the unknown client not counted"
    );

    let (status, page) = app.page(&format!("{show}/activity")).await;
    assert_eq!(status, 200);
    let summary = page.text("#requests p.muted").unwrap();
    assert!(
        summary.contains("2 tokens issued · 5 failed requests"),
        "{summary}"
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let per_day = page.text("table.visually-hidden").unwrap();
    assert!(per_day.contains(&format!("{today} 2 5")), "{per_day}");
    assert_eq!(rows(&page, "svg.chart rect.failed"), 14);

    let failures = page.text("#failures table").unwrap();
    assert!(
        failures.contains("invalid_client the client secret does not match any active secret 3"),
        "{failures}"
    );
    assert!(failures.contains("invalid_grant"), "{failures}");
    assert!(failures.contains("invalid_scope"), "{failures}");
    assert!(
        failures.contains("Check the client ID and secret"),
        "{failures}"
    );
    // The most frequent first.
    assert!(
        page.text("#failures tbody tr")
            .unwrap()
            .starts_with("invalid_client"),
    );
    let html = page.0.html();
    assert!(!html.contains("do-not-log") && !html.contains("not-a-token"));
    assert!(!html.contains(&created.secret));
    let stored: Vec<String> = token_requests::table
        .select(token_requests::detail)
        .load(&mut app.db.connect())
        .unwrap();
    assert!(
        stored
            .iter()
            .all(|d| !d.contains("do-not-log") && !d.contains("not-a-token")),
        "{stored:?}"
    );

    // An expired secret says so (still one answer, `invalid_client`, to the caller).
    let row = Client::find_by_client_id(&mut app.db.connect(), &created.client_id)
        .unwrap()
        .unwrap();
    diesel::update(
        latchkey::db::schema::client_secrets::table
            .filter(latchkey::db::schema::client_secrets::client_id.eq(row.id)),
    )
    .set(
        latchkey::db::schema::client_secrets::expires_at
            .eq(Some(latchkey::db::now() - chrono::TimeDelta::minutes(1))),
    )
    .execute(&mut app.db.connect())
    .unwrap();
    // The client cache sees the change within a second (a request before that still succeeds).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while client_credentials(&app, &created).await != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expiry never took effect"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, page) = app.page(&format!("{show}/activity")).await;
    let failures = page.text("#failures table").unwrap();
    assert!(
        failures.contains("invalid_client every secret of this client has expired 1"),
        "the page writes this instance's counts first: {failures}"
    );
}

#[tokio::test]
async fn an_empty_activity_page_says_so() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let created = create_app(&app, &valid_form()).await;
    let (status, page) = app
        .page(&format!("{APPS}/{}/activity", created.client_id))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        page.text("#failures p").as_deref(),
        Some("No failed token requests in the last 14 days.")
    );
    assert!(
        page.text("#requests p.muted")
            .unwrap()
            .starts_with("0 tokens issued · 0 failed requests")
    );
}

#[tokio::test]
async fn the_audit_log_filters_pages_and_downloads_as_csv() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let created = create_app(&app, &valid_form()).await;
    let activity = format!("{APPS}/{}/activity", created.client_id);
    let row = Client::find_by_client_id(&mut app.db.connect(), &created.client_id)
        .unwrap()
        .unwrap();
    {
        let mut conn = app.db.connect();
        for i in 0..59 {
            AuditEvent::record(
                &mut conn,
                Some(row.user_id),
                Some(row.id),
                "edited",
                &format!("change {i}"),
                Some("192.0.2.1"),
            )
            .unwrap();
        }
        // What a spreadsheet would run as a formula.
        AuditEvent::record(
            &mut conn,
            Some(row.user_id),
            Some(row.id),
            "edited",
            "=HYPERLINK(\"https://evil.example\")",
            None,
        )
        .unwrap();
    }
    // 61 events: "created" and 60 edits.
    let (status, page) = app.page(&activity).await;
    assert_eq!(status, 200);
    assert_eq!(rows(&page, "#log tbody tr"), 50);
    assert_eq!(
        page.text("#log-count").unwrap().split(" Download").next(),
        Some("Events 1–50 of 61.")
    );
    assert_eq!(page.text(".pager span").as_deref(), Some("Page 1 of 2"));
    let older = page.attr(".pager a[rel=next]", "href").unwrap();
    assert_eq!(older, "?page=2#log");
    let (_, second) = app.page(&format!("{activity}?page=2")).await;
    assert_eq!(rows(&second, "#log tbody tr"), 11);
    assert!(
        second
            .text("#log tbody tr:last-child")
            .unwrap()
            .contains("created")
    );
    assert!(second.attr(".pager a[rel=prev]", "href").is_some());
    // Past the end: the last page.
    let (status, past) = app.page(&format!("{activity}?page=99")).await;
    assert_eq!(status, 200);
    assert_eq!(rows(&past, "#log tbody tr"), 11);

    // The event type.
    let (_, created_only) = app.page(&format!("{activity}?action=created")).await;
    assert_eq!(rows(&created_only, "#log tbody tr"), 1);
    assert_eq!(
        created_only
            .attr("#action option[selected]", "value")
            .as_deref(),
        Some("created")
    );
    assert!(created_only.text("#log").unwrap().contains("Clear filters"));

    // Dates (UTC days): today holds everything, tomorrow nothing.
    let today = chrono::Utc::now().date_naive();
    let tomorrow = today + chrono::TimeDelta::days(1);
    let (_, todays) = app
        .page(&format!("{activity}?from={today}&to={today}&action=edited"))
        .await;
    assert_eq!(
        todays.text("#log-count").unwrap().split(" Download").next(),
        Some("Events 1–50 of 60 matching the filters.")
    );
    let older = todays.attr(".pager a[rel=next]", "href").unwrap();
    assert_eq!(
        older,
        format!("?action=edited&from={today}&to={today}&page=2#log"),
        "the next page keeps the filters"
    );
    let (_, none) = app.page(&format!("{activity}?from={tomorrow}")).await;
    assert_eq!(
        none.text("#log p.muted").as_deref(),
        Some("No events match these filters.")
    );

    // Bad filters: each error beside its field, the input kept.
    let (status, bad) = app
        .page(&format!("{activity}?from=yesterday&action=dropped_tables"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(bad.attr("#from", "value").as_deref(), Some("yesterday"));
    assert_eq!(bad.attr("#from", "aria-invalid").as_deref(), Some("true"));
    assert!(
        bad.text("#from-error")
            .unwrap()
            .starts_with("From: enter a date")
    );
    assert!(
        bad.text("#action-error")
            .unwrap()
            .starts_with("Event type:")
    );
    let (status, backwards) = app
        .page(&format!("{activity}?from={tomorrow}&to={today}"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        backwards.text("#to-error").as_deref(),
        Some("To: choose a day on or after From.")
    );

    // CSV: every matching event, formulas defused.
    let csv_link = page.attr("#log-count a", "href").unwrap();
    assert_eq!(csv_link, format!("{activity}.csv"));
    let res = app.get(&csv_link).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/csv; charset=utf-8"
    );
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"activity-"),
        "{disposition}"
    );
    let body = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["time_utc", "event", "detail", "who", "address"]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 61);
    assert_eq!(&records[0][2], "'=HYPERLINK(\"https://evil.example\")");
    assert_eq!(&records[0][3], "acme");
    assert_eq!(&records[1][4], "192.0.2.1");
    assert!(records[0][0].ends_with('Z'));
    let res = app.get(&format!("{activity}.csv?action=created")).await;
    let body = res.text().await.unwrap();
    assert_eq!(body.lines().count(), 2, "{body}");
    let res = app.get(&format!("{activity}.csv?from=soon")).await;
    assert_eq!(res.status(), 400);

    // Another merchant's application is not there for them.
    let other = spawn_browser(&app, "globex").await;
    assert_eq!(
        other
            .get(app.url(&format!("{activity}.csv")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        other.get(app.url(&activity)).send().await.unwrap().status(),
        404
    );
}

/// A count of an application deleted before it was written is dropped, not kept failing the
/// write (the foreign key) and holding back every other application's counts.
#[tokio::test]
async fn counts_of_a_deleted_application_do_not_hold_back_the_others() {
    let app = spawn_app().await;
    merchant(&app, "acme").await;
    let gone = create_app(&app, &valid_form()).await;
    let kept = create_app(&app, &valid_form()).await;
    let wrong = |client: &TestClient| TestClient {
        client_id: client.client_id.clone(),
        secret: "lks_wrong".into(),
        owner_id: 0,
    };
    assert_eq!(client_credentials(&app, &wrong(&gone)).await, 401);
    let res = app.delete_app(&format!("{APPS}/{}", gone.client_id)).await;
    assert_eq!(res.status(), 303);
    assert_eq!(client_credentials(&app, &wrong(&kept)).await, 401);
    let (status, page) = app
        .page(&format!("{APPS}/{}/activity", kept.client_id))
        .await;
    assert_eq!(status, 200);
    let summary = page.text("#requests p.muted").unwrap();
    assert!(
        summary.contains("0 tokens issued · 1 failed request "),
        "{summary}"
    );
}

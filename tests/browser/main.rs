//! The browser suite: Latchkey's pages driven in headless Chromium through WebDriver, as a
//! person would use them.
//!
//! One journey (merchant signs up through the emailed link, registers an application, copies and
//! rotates its secret; an end user authorizes it and later revokes it) runs four times: at
//! desktop and phone widths, with JavaScript on and off. On every Latchkey page of the way it
//! runs axe-core (no serious or critical violation allowed), checks that every field has a label,
//! tabs through the page (every control reachable, every focus visible) and writes a screenshot
//! to `target/screenshots/`. The end user always uses the keyboard alone; without JavaScript the
//! merchant does too (Tab, typing, Space, arrow keys, Enter: never the mouse).
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`).
//! Without them the tests say "skipped" and pass, except under `CI=true`, where a missing
//! browser fails. `TEST_BROWSER=0` skips them on purpose (CI's other `cargo test` runs
//! do, because CI runs this target in a step of its own).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod a11y;
mod browser;
mod callback;
mod journey;

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

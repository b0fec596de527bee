//! Accessibility checks on the page in the browser: axe-core's rules (in the light and the dark
//! colour scheme), a label for every field, and the keyboard (every control reachable with Tab,
//! in reading order, with the focus visible on each).
//!
//! Each check returns the problems it found, so that `checks_catch_known_problems` can show that
//! they fail on a page built to break them; `page` asserts there are none.

use serde_json::{Value, json};

use crate::browser::Browser;

/// axe-core, vendored from the npm registry (version and licence in `fixtures/README.md`).
const AXE: &str = include_str!("fixtures/axe.min.js");

/// Every check on the page now; fails on any problem. axe-core's minor and moderate findings are
/// printed, not failed on.
pub async fn page(browser: &Browser, page: &str) {
    let mut problems = Vec::new();
    for scheme in ["light", "dark"] {
        let (serious, other) = axe(browser, scheme).await;
        for line in other {
            crate::browser::say(&format!(
                "axe on {page} [{} {scheme}]: {line}",
                browser.label()
            ));
        }
        problems.extend(serious.into_iter().map(|v| format!("axe ({scheme}): {v}")));
    }
    problems.extend(unlabelled_fields(browser).await);
    problems.extend(keyboard(browser).await);
    assert!(
        problems.is_empty(),
        "accessibility problems on {page} [{}]:\n{}",
        browser.label(),
        problems.join("\n")
    );
}

/// Runs axe-core on the page in the `light` or `dark` colour scheme; returns the serious and
/// critical violations, and the others.
pub async fn axe(browser: &Browser, scheme: &str) -> (Vec<String>, Vec<String>) {
    browser
        .cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .await;
    let loaded = browser
        .client
        .execute(
            &format!("{AXE}\n;return typeof window.axe === 'object' ? window.axe.version : null;"),
            vec![],
        )
        .await
        .unwrap();
    assert!(loaded.is_string(), "axe-core did not load: {loaded}");
    if !browser.js {
        // With JavaScript off the page's timers never fire, and axe-core waits on a few
        // zero-delay ones. Run those after the current microtasks instead; longer ones are
        // safety timeouts (for frames, preloads) that a finished run clears anyway.
        browser
            .client
            .execute(
                r#"window.setTimeout = function (fn, delay) {
                     const args = Array.prototype.slice.call(arguments, 2);
                     if (!(delay > 1)) { Promise.resolve().then(() => Promise.resolve()).then(() => fn.apply(null, args)); }
                     return 0;
                   };
                   window.clearTimeout = function () {};"#,
                vec![],
            )
            .await
            .unwrap();
    }
    let result = browser
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               window.axe.run(document, {resultTypes: ["violations"]})
                 .then((r) => done({violations: r.violations}))
                 .catch((e) => done({error: String(e)}));"#,
            vec![],
        )
        .await
        .unwrap();
    browser
        .cdp("Emulation.setEmulatedMedia", json!({"features": []}))
        .await;
    assert!(
        result["error"].is_null(),
        "axe-core failed: {}",
        result["error"]
    );
    let violations = result["violations"].as_array().cloned().unwrap_or_default();
    let (mut serious, mut other) = (Vec::new(), Vec::new());
    for v in &violations {
        match v["impact"].as_str() {
            Some("serious" | "critical") => serious.push(describe(v)),
            _ => other.push(describe(v)),
        }
    }
    (serious, other)
}

fn describe(v: &Value) -> String {
    let targets: Vec<String> = v["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .take(5)
        .map(|n| {
            format!(
                "{} ({})",
                n["target"],
                n["failureSummary"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('\n', " ")
            )
        })
        .collect();
    format!(
        "{} [{}]: {} on {}",
        v["id"].as_str().unwrap_or_default(),
        v["impact"].as_str().unwrap_or_default(),
        v["help"].as_str().unwrap_or_default(),
        targets.join("; ")
    )
}

/// Every field has a `<label>` (or `aria-labelledby` pointing at visible text): a placeholder
/// or a title is not a label.
pub async fn unlabelled_fields(browser: &Browser) -> Vec<String> {
    serde_json::from_value(
        browser
            .client
            .execute(
                r#"return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
                     .filter((e) => !(e.labels && e.labels.length > 0 && Array.from(e.labels).some((l) => l.textContent.trim()))
                       && !(e.getAttribute('aria-labelledby') || '').split(' ').some((id) => {
                         const l = id && document.getElementById(id); return l && l.textContent.trim(); }))
                     .map((e) => 'no label: ' + e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.name ? '[name=' + e.name + ']' : ''));"#,
                vec![],
            )
            .await
            .unwrap(),
    )
    .unwrap()
}

/// Every control a mouse can use, listed in document order (what Tab should visit).
const CONTROLS: &str = r#"
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]';
  return Array.from(document.querySelectorAll(selector))
    .filter((e) => !e.disabled && e.tabIndex >= 0 && e.getClientRects().length > 0
      && getComputedStyle(e).visibility !== 'hidden')
    .filter((e) => !(e.type === 'radio' && !e.checked
      && document.querySelector('input[type=radio][name="' + e.name + '"]:checked')))
    .map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '|' + (e.textContent || e.value || e.name || '').trim().slice(0, 40));
"#;

/// What has the focus, and whether a person can see that it does: an outline at least 2px wide
/// (a shadow alone disappears in forced-colours mode) with at least 3:1 contrast against the
/// background behind the control (WCAG 2.4.7 and 1.4.11).
const FOCUSED: &str = r#"
  const e = document.activeElement;
  if (!e || e === document.body || e === document.documentElement) { return null; }
  const s = getComputedStyle(e);
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const opaque = (c) => c.length >= 3 && (c.length < 4 || c[3] > 0);
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  let behind = [255, 255, 255];
  for (let p = e.parentElement; p; p = p.parentElement) {
    const c = rgb(getComputedStyle(p).backgroundColor);
    if (opaque(c)) { behind = c; break; }
  }
  const ring = rgb(s.outlineColor);
  const [hi, lo] = [lum(ring), lum(behind)].sort((a, b) => b - a);
  const contrast = (hi + 0.05) / (lo + 0.05);
  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2 && opaque(ring);
  return {
    key: e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '|' + (e.textContent || e.value || e.name || '').trim().slice(0, 40),
    visible: outline && contrast >= 3,
    style: 'outline: ' + s.outlineStyle + ' ' + s.outlineWidth + ' ' + s.outlineColor + ' (contrast ' + contrast.toFixed(2) + ':1 against ' + behind + ')',
  };
"#;

/// Tabs through the whole page from the top: each control must be reached, in reading order,
/// and show a visible focus indicator.
pub async fn keyboard(browser: &Browser) -> Vec<String> {
    let expected: Vec<String> =
        serde_json::from_value(browser.client.execute(CONTROLS, vec![]).await.unwrap()).unwrap();
    browser.reset_focus().await;
    let mut reached = Vec::new();
    let mut problems = Vec::new();
    for _ in 0..expected.len() + 2 {
        browser.press(fantoccini::key::Key::Tab).await;
        let focused = browser.client.execute(FOCUSED, vec![]).await.unwrap();
        if focused.is_null() {
            break;
        }
        let key = focused["key"].as_str().unwrap_or_default().to_owned();
        if reached.first() == Some(&key) {
            break; // wrapped round
        }
        if focused["visible"] != json!(true) {
            problems.push(format!("focus not visible on {key}: {}", focused["style"]));
        }
        reached.push(key);
    }
    browser.reset_focus().await;
    let missed: Vec<&String> = expected.iter().filter(|e| !reached.contains(e)).collect();
    if !missed.is_empty() {
        problems.push(format!(
            "Tab does not reach {missed:?} (it reached {reached:?})"
        ));
    } else if reached != expected {
        problems.push(format!(
            "Tab order {reached:?} differs from the reading order {expected:?}"
        ));
    }
    problems
}

/// The checks are worth something only if they fail: on a page with faint text, fields without a
/// label and a button without a focus ring, each one reports its problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_catch_known_problems() {
    use crate::browser::{ONE_AT_A_TIME, Width, tools_or_skip};
    use base64::Engine as _;

    let Some(tools) = tools_or_skip("checks_catch_known_problems") else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let browser = Browser::launch(&tools, Width::Desktop, true).await;
    let page =
        base64::engine::general_purpose::STANDARD.encode(include_str!("fixtures/broken.html"));
    browser.goto(&format!("data:text/html;base64,{page}")).await;
    let (serious, _) = axe(&browser, "light").await;
    let labels = unlabelled_fields(&browser).await;
    let keys = keyboard(&browser).await;
    browser.quit().await;

    let rule = |id: &str| serious.iter().any(|v| v.starts_with(&format!("{id} [")));
    assert!(
        rule("color-contrast"),
        "axe-core missed the faint text: {serious:?}"
    );
    assert!(
        rule("label"),
        "axe-core missed the unlabelled field: {serious:?}"
    );
    // axe-core takes a placeholder for a name; this suite does not.
    assert_eq!(
        labels,
        [
            "no label: input[name=nameless]",
            "no label: input[name=bare]"
        ]
    );
    assert!(
        keys.iter()
            .any(|p| p.starts_with("focus not visible on button|No focus ring")),
        "the keyboard check missed the button without a focus ring: {keys:?}"
    );
}

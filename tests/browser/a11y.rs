//! Accessibility checks on the page in the browser: axe-core's rules, and the keyboard (every
//! control reachable with Tab, and the focus visible on each).

use serde_json::{Value, json};

use crate::browser::Browser;

/// axe-core, vendored from the npm registry (version and licence in `fixtures/README.md`).
const AXE: &str = include_str!("fixtures/axe.min.js");

/// Runs axe-core on the page and fails on any serious or critical violation. Minor and moderate
/// ones are printed, not failed on. `scheme` is `light` or `dark` (the stylesheet has both).
pub async fn axe(browser: &Browser, page: &str, scheme: &str) {
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
    assert!(
        loaded.is_string(),
        "axe-core did not load on {page}: {loaded}"
    );
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
        "axe-core failed on {page}: {}",
        result["error"]
    );
    let violations = result["violations"].as_array().cloned().unwrap_or_default();
    let mut serious = Vec::new();
    for v in &violations {
        let impact = v["impact"].as_str().unwrap_or("unknown");
        let line = describe(v);
        if matches!(impact, "serious" | "critical") {
            serious.push(line);
        } else {
            crate::browser::say(&format!(
                "axe ({impact}) on {page} [{} {scheme}]: {line}",
                browser.label()
            ));
        }
    }
    assert!(
        serious.is_empty(),
        "axe-core found serious or critical violations on {page} [{} {scheme}]:\n{}",
        browser.label(),
        serious.join("\n")
    );
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
pub async fn keyboard(browser: &Browser, page: &str) {
    let expected: Vec<String> =
        serde_json::from_value(browser.client.execute(CONTROLS, vec![]).await.unwrap()).unwrap();
    browser.reset_focus().await;
    let mut reached = Vec::new();
    let mut invisible = Vec::new();
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
            invisible.push(format!("{key}: {}", focused["style"]));
        }
        reached.push(key);
    }
    browser.reset_focus().await;
    assert!(
        invisible.is_empty(),
        "focus is not visible on {page} [{}] for:\n{}",
        browser.label(),
        invisible.join("\n")
    );
    let missed: Vec<&String> = expected.iter().filter(|e| !reached.contains(e)).collect();
    assert!(
        missed.is_empty(),
        "Tab does not reach these controls on {page} [{}]: {missed:?}\nreached: {reached:?}",
        browser.label()
    );
    assert_eq!(
        reached,
        expected,
        "Tab order on {page} [{}] differs from the reading order",
        browser.label()
    );
}

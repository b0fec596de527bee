//! Redirect URIs as registered (`RedirectUri::parse`, `RedirectUris::parse`, `check_live`).
//!
//! Invariants besides "no panic":
//! - a URI that parses is kept byte for byte (the input without surrounding whitespace),
//!   because authorization requests are matched against it exactly (RFC 9700 §4.1.3), and it
//!   parses again to the same value;
//! - it has no fragment (RFC 6749 §3.1.2), no whitespace, and at most 2000 bytes;
//! - a list that parses has at most 10 distinct URIs, each found by `contains_exact`, and
//!   survives its stored (space-separated) form; a live list passes `check_live` throughout.
#![no_main]

use latchkey::domain::{RedirectUri, RedirectUris};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(uri) = RedirectUri::parse(text) {
        assert_eq!(uri.as_str(), text.trim(), "not kept verbatim");
        assert_eq!(RedirectUri::parse(uri.as_str()).as_ref(), Ok(&uri));
        assert!(!uri.as_str().contains('#'));
        assert!(!uri.as_str().chars().any(char::is_whitespace));
        assert!(uri.as_str().len() <= RedirectUri::MAX);
        assert!(url::Url::parse(uri.as_str()).is_ok());
    }

    for live in [false, true] {
        let Ok(uris) = RedirectUris::parse(text.lines(), live) else {
            continue;
        };
        assert!(uris.len() <= RedirectUris::MAX_COUNT);
        for uri in uris.iter() {
            assert!(uris.contains_exact(uri.as_str()));
            if live {
                assert!(uri.check_live().is_ok());
            }
        }
        assert_eq!(RedirectUris::from_stored(&uris.to_stored()), uris);
    }
});

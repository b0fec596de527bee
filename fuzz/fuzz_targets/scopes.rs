//! Scope strings (`Scopes::parse`, `ScopeName::parse`, `Scopes::from_stored`), as sent in
//! token and authorization requests: space separated (RFC 6749 §3.3) or comma separated
//! (Revenue Monster).
//!
//! Invariants besides "no panic":
//! - every parsed name is 1 to 64 bytes of `a-z 0-9 _ . : -`;
//! - the set round-trips through its stored form, by `parse` and by `from_stored`;
//! - a parsed set is a subset of itself, and of its union with anything.
#![no_main]

use latchkey::domain::{ScopeName, Scopes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = ScopeName::parse(text) {
        assert_eq!(name.as_str(), text.trim());
    }
    let stored = Scopes::from_stored(text);
    assert_eq!(Scopes::from_stored(&stored.to_stored()), stored);

    let Ok(scopes) = Scopes::parse(text) else {
        return;
    };
    for name in scopes.iter() {
        let s = name.as_str();
        assert!(!s.is_empty() && s.len() <= ScopeName::MAX, "{s:?}");
        assert!(
            s.bytes().all(|b| b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'_' | b'.' | b':' | b'-')),
            "{s:?}"
        );
        assert!(scopes.contains(s));
    }
    let round = scopes.to_stored();
    assert_eq!(Scopes::parse(&round).as_ref(), Ok(&scopes));
    assert_eq!(Scopes::from_stored(&round), scopes);
    assert!(scopes.is_subset(&scopes));
    let union: Scopes = scopes.iter().chain(stored.iter()).cloned().collect();
    assert!(scopes.is_subset(&union) && stored.is_subset(&union));
});

//! Scopes: single names and the sets that clients and tokens carry.

use std::collections::BTreeSet;
use std::fmt;

use super::Invalid;

/// One scope name. RFC 6749 §3.3 allows any printable ASCII but space, `"` and `\`; Latchkey
/// keeps to `a-z 0-9 _ . : -`, which reads well in URLs and never needs escaping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScopeName(String);

impl ScopeName {
    pub const MAX: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let value = raw.trim();
        if value.is_empty() || value.len() > Self::MAX {
            return Err(Invalid::new(format!(
                "must be 1 to {} characters long",
                Self::MAX
            )));
        }
        if !value.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | ':' | '-')
        }) {
            return Err(Invalid::new(format!(
                "“{value}” may contain only lowercase letters, digits and _ . : -"
            )));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ScopeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of scopes, kept sorted so that its stored and displayed forms are stable. Serialized
/// (in a session, say) as its stored form.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", from = "String")]
pub struct Scopes(BTreeSet<ScopeName>);

impl From<Scopes> for String {
    fn from(scopes: Scopes) -> Self {
        scopes.to_stored()
    }
}

impl From<String> for Scopes {
    fn from(stored: String) -> Self {
        Self::from_stored(&stored)
    }
}

impl Scopes {
    /// At most this many scopes per client: more is a mistake, and every token, consent page
    /// and introspection answer carries the list.
    pub const MAX_PER_CLIENT: usize = 20;

    /// The scopes an application may ask for, at most [`Self::MAX_PER_CLIENT`].
    pub fn for_client(names: impl IntoIterator<Item = ScopeName>) -> Result<Self, Invalid> {
        let scopes: Self = names.into_iter().collect();
        if scopes.0.len() > Self::MAX_PER_CLIENT {
            return Err(Invalid::new(format!(
                "are limited to {} per application ({} given)",
                Self::MAX_PER_CLIENT,
                scopes.0.len()
            )));
        }
        Ok(scopes)
    }

    /// Parses a list separated by spaces (RFC 6749 §3.3) or commas (Revenue Monster's
    /// `scope=manage_payment,get_merchant_profile`).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        raw.split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(ScopeName::parse)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    /// Reads the stored, space-separated form, skipping anything that is not a scope name. A
    /// consent's scopes carry when each was granted (`name@seconds`, [`Granted`]): the time is
    /// not part of the scope.
    pub fn from_stored(stored: &str) -> Self {
        Self(
            stored
                .split_whitespace()
                .filter_map(|s| ScopeName::parse(s.split('@').next().unwrap_or_default()).ok())
                .collect(),
        )
    }

    /// Space separated, as stored and as sent in the `scope` response parameter.
    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(ScopeName::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn iter(&self) -> impl Iterator<Item = &ScopeName> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == name)
    }

    /// The scope to grant a request (RFC 6749 §3.3), at the token and authorization endpoints
    /// alike: none asked (or an empty list) → everything the client may have (Revenue Monster's
    /// "full access"); otherwise what was asked, if the client may have all of it.
    pub fn grant(requested: Option<&str>, allowed: &Scopes) -> Result<Scopes, ScopeRefusal> {
        let Some(raw) = requested else {
            return Ok(allowed.clone());
        };
        let asked = Self::parse(raw).map_err(ScopeRefusal::Malformed)?;
        if asked.is_empty() {
            return Ok(allowed.clone());
        }
        if let Some(extra) = asked.iter().find(|s| !allowed.contains(s.as_str())) {
            return Err(ScopeRefusal::NotAllowed(extra.clone()));
        }
        Ok(asked)
    }
}

/// Why [`Scopes::grant`] refused: each endpoint answers `invalid_scope` with [`Self::describe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeRefusal {
    /// Not a list of scope names.
    Malformed(Invalid),
    /// A scope the client may not have.
    NotAllowed(ScopeName),
}

impl ScopeRefusal {
    /// The `error_description`.
    pub fn describe(&self) -> String {
        match self {
            Self::Malformed(why) => format!("The scope {why}."),
            Self::NotAllowed(name) => format!("The scope `{name}` is not allowed for this client."),
        }
    }
}

impl FromIterator<ScopeName> for Scopes {
    fn from_iter<I: IntoIterator<Item = ScopeName>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// A consent's scopes with when each was granted, as `consents.scope` stores them:
/// `get_user_profile@1765116000 manage_payment@1765119600` (seconds since the epoch). A scope
/// stored before the times were kept has none (`get_user_profile`). Kept in the one column so
/// that the consent page's `granted` hint, and the conditional write that compares it, carry the
/// times without another statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted(std::collections::BTreeMap<ScopeName, Option<i64>>);

impl Granted {
    pub fn from_stored(stored: &str) -> Self {
        Self(
            stored
                .split_whitespace()
                .filter_map(|token| {
                    let (name, at) = match token.split_once('@') {
                        Some((name, at)) => (name, at.parse().ok()),
                        None => (token, None),
                    };
                    ScopeName::parse(name).ok().map(|name| (name, at))
                })
                .collect(),
        )
    }

    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(|(name, at)| match at {
                Some(at) => format!("{}@{at}", name.as_str()),
                None => name.as_str().to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// These plus `asked`: a scope granted before keeps its time, a new one gets `now`.
    pub fn with(mut self, asked: &Scopes, now: i64) -> Self {
        for name in asked.iter() {
            self.0.entry(name.clone()).or_insert(Some(now));
        }
        self
    }

    /// These without `name`; whether it was there.
    pub fn without(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|n, _| n.as_str() != name);
        self.0.len() != before
    }

    pub fn scopes(&self) -> Scopes {
        Scopes(self.0.keys().cloned().collect())
    }

    /// When `name` was granted, if it is and that was recorded.
    pub fn granted_at(&self, name: &str) -> Option<i64> {
        self.0
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .and_then(|(_, at)| *at)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_gets_what_it_asked_within_what_the_client_may_have() {
        let allowed = Scopes::parse("get_user_profile manage_payment").unwrap();
        let grant = |asked| Scopes::grant(asked, &allowed);
        assert_eq!(grant(None), Ok(allowed.clone()));
        assert_eq!(grant(Some(" , ")), Ok(allowed.clone()));
        assert_eq!(
            grant(Some("manage_payment")),
            Ok(Scopes::parse("manage_payment").unwrap())
        );
        let refused = grant(Some("manage_payment admin")).unwrap_err();
        assert_eq!(
            refused.describe(),
            "The scope `admin` is not allowed for this client."
        );
        assert!(matches!(
            grant(Some("bad\u{7f}")),
            Err(ScopeRefusal::Malformed(_))
        ));
    }

    #[test]
    fn scopes_accept_spaces_and_commas() {
        let s = Scopes::parse("manage_payment,get_user_profile get_user_profile").unwrap();
        assert_eq!(s.to_stored(), "get_user_profile manage_payment");
        assert!(Scopes::parse("").unwrap().is_empty());
        assert!(Scopes::parse("Bad Scope").is_err());
        assert!(Scopes::parse("quote\"d").is_err());
        let small = Scopes::parse("get_user_profile").unwrap();
        assert!(small.is_subset(&s));
        assert!(!s.is_subset(&small));
    }

    #[test]
    fn a_client_has_at_most_twenty_scopes() {
        let names = |n: usize| (0..n).map(|i| ScopeName::parse(&format!("s{i}")).unwrap());
        assert_eq!(Scopes::for_client(names(20)).unwrap().iter().count(), 20);
        let err = Scopes::for_client(names(21)).unwrap_err();
        assert!(err.to_string().contains("limited to 20"), "{err}");
    }

    #[test]
    fn granted_scopes_keep_their_times_and_read_as_scopes() {
        let stored = "get_user_profile manage_payment@1765116000";
        let granted = Granted::from_stored(stored);
        assert_eq!(granted.granted_at("manage_payment"), Some(1_765_116_000));
        assert_eq!(granted.granted_at("get_user_profile"), None);
        assert_eq!(
            Scopes::from_stored(stored).to_stored(),
            "get_user_profile manage_payment"
        );
        let asked = Scopes::parse("manage_payment manage_store").unwrap();
        let mut wider = granted.with(&asked, 1_765_200_000);
        assert_eq!(
            wider.to_stored(),
            "get_user_profile manage_payment@1765116000 manage_store@1765200000"
        );
        assert!(wider.without("manage_payment"));
        assert!(!wider.without("manage_payment"));
        assert_eq!(wider.scopes().to_stored(), "get_user_profile manage_store");
        assert_eq!(Granted::from_stored(&wider.to_stored()), wider);
        assert!(Granted::from_stored("").is_empty());
    }
}

//! OpenID Connect's `prompt` and `max_age` (OIDC Core §3.1.2.1): what the client asks of the
//! sign-in and the consent page, parsed once into types. `oauth::authorize` reads them from the
//! request and decides with them.

use serde::{Deserialize, Serialize};

/// One `prompt` value (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// Show no page: answer at once, or send back `login_required` / `consent_required`.
    None,
    /// The person enters their password again, whatever the session.
    Login,
    /// The consent page, even when the person already agreed.
    Consent,
    /// Let the person choose the account: our consent page names it and offers "Not you?".
    SelectAccount,
}

impl Prompt {
    /// Every value, as the metadata lists them (`prompt_values_supported`).
    pub const ALL: [Prompt; 4] = [
        Prompt::None,
        Prompt::Login,
        Prompt::Consent,
        Prompt::SelectAccount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Prompt::None => "none",
            Prompt::Login => "login",
            Prompt::Consent => "consent",
            Prompt::SelectAccount => "select_account",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == value)
    }
}

/// The request's `prompt` values: a space-separated set, `none` only on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompts(std::collections::BTreeSet<Prompt>);

impl Prompts {
    /// Parses `prompt` (OIDC Core §3.1.2.1). The error is the `error_description`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut set = std::collections::BTreeSet::new();
        for value in raw.split(' ').filter(|v| !v.is_empty()) {
            let prompt = Prompt::parse(value)
                .ok_or_else(|| format!("The prompt value `{value}` is not supported."))?;
            set.insert(prompt);
        }
        // "If this parameter contains none with any other value, an error is returned."
        if set.contains(&Prompt::None) && set.len() > 1 {
            return Err("prompt=none cannot be combined with other prompt values.".into());
        }
        Ok(Self(set))
    }

    pub fn contains(&self, prompt: Prompt) -> bool {
        self.0.contains(&prompt)
    }
}

/// `max_age` (OIDC Core §3.1.2.1): a non-negative number of seconds, in decimal digits only. A
/// value too large to hold means "any age", which is what it says.
pub fn parse_max_age(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(raw.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_values_parse_as_a_set_and_none_stands_alone() {
        assert_eq!(Prompts::parse("").unwrap(), Prompts::default());
        let p = Prompts::parse("login  consent login").unwrap();
        assert!(p.contains(Prompt::Login) && p.contains(Prompt::Consent));
        assert!(!p.contains(Prompt::None));
        for bad in [
            "none login",
            "consent none",
            "LOGIN",
            "bogus",
            "login,consent",
        ] {
            assert!(Prompts::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_max_age("0"), Some(0));
        assert_eq!(parse_max_age("3600"), Some(3600));
        assert_eq!(parse_max_age("99999999999999999999999"), Some(u64::MAX));
        for bad in ["", "-1", "+5", "1.5", " 5", "5s", "0x10"] {
            assert_eq!(parse_max_age(bad), None, "{bad:?}");
        }
    }
}

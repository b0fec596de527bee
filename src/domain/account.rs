//! People: usernames, display names, email addresses and new passwords.

use validator::ValidateEmail as _;

use super::{Invalid, no_control_chars};

/// A login name: 3–32 characters of `a-z 0-9 . _ -`, starting with a letter or digit,
/// stored lowercase so that `Alice` and `alice` are one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MIN: usize = 3;
    pub const MAX: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let value = raw.trim().to_lowercase();
        let len = value.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(Invalid::new(format!(
                "must be {} to {} characters long",
                Self::MIN,
                Self::MAX
            )));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        {
            return Err(Invalid::new(
                "may contain only letters, digits, dots, dashes and underscores",
            ));
        }
        if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(Invalid::new("must start with a letter or a digit"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name shown to people: 1–100 characters on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(Invalid::new("can't be blank"));
        }
        if value.chars().count() > Self::MAX {
            return Err(Invalid::new(format!(
                "must be at most {} characters long",
                Self::MAX
            )));
        }
        no_control_chars(value)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, checked with the `validator` crate and stored lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let value = raw.trim().to_lowercase();
        if value.is_empty() {
            return Err(Invalid::new("can't be blank"));
        }
        // RFC 5321 §4.5.3.1.3: a path is at most 256 octets, so an address at most 254.
        if value.len() > 254 || !value.validate_email() {
            return Err(Invalid::new("is not a valid email address"));
        }
        // `validate_email` takes `ann@localhost`; mail to a domain without a dot goes nowhere
        // on the internet, so it is almost always a typo (`ann@gmailcom`).
        let domain = value.rsplit('@').next().unwrap_or_default();
        if !domain.contains('.') || domain.ends_with('.') || domain.starts_with('.') {
            return Err(Invalid::new(
                "needs a full domain after the @, like example.com",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password someone is choosing: at least 10 characters, and not the username.
/// (Only new passwords are checked; logging in compares whatever is typed.)
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

impl NewPassword {
    pub const MIN: usize = 10;
    /// argon2 accepts more, but hashing megabytes on request is a denial-of-service lever.
    pub const MAX: usize = 1024;

    pub fn parse(raw: &str, username: &Username) -> Result<Self, Invalid> {
        let len = raw.chars().count();
        if len < Self::MIN {
            return Err(Invalid::new(format!(
                "must be at least {} characters long",
                Self::MIN
            )));
        }
        if raw.len() > Self::MAX {
            return Err(Invalid::new(format!(
                "must be at most {} bytes long",
                Self::MAX
            )));
        }
        if raw.trim().to_lowercase() == username.as_str() {
            return Err(Invalid::new("must not be the same as the username"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
        assert!(Username::parse("al").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("-alice").is_err());
        assert!(Username::parse("ålice").is_err());
        assert!(Username::parse("yussuf").is_ok());
    }

    #[test]
    fn passwords_follow_the_rules() {
        let user = Username::parse("yussuf1234").unwrap();
        assert!(NewPassword::parse("123456789", &user).is_err());
        assert!(NewPassword::parse("1234567890", &user).is_ok());
        assert_eq!(
            NewPassword::parse("Yussuf1234", &user).unwrap_err().0,
            "must not be the same as the username"
        );
        assert!(NewPassword::parse(&"x".repeat(1025), &user).is_err());
        assert!(!format!("{:?}", NewPassword::parse("1234567890", &user).unwrap()).contains("123"));
    }

    #[test]
    fn emails_and_names() {
        assert_eq!(
            Email::parse("A@Example.COM").unwrap().as_str(),
            "a@example.com"
        );
        assert!(Email::parse("not-an-email").is_err());
        for no_dot in ["ann@gmailcom", "ann@localhost", "ann@example.", "ann@.com"] {
            assert!(Email::parse(no_dot).is_err(), "{no_dot}");
        }
        assert!(Email::parse("ann@mail.example.my").is_ok());
        assert!(DisplayName::parse("  ").is_err());
        assert!(DisplayName::parse("Line\nbreak").is_err());
        assert_eq!(DisplayName::parse(" Yussuf ").unwrap().as_str(), "Yussuf");
    }
}

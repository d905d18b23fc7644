//! The rules a new password must meet, checked before it is hashed, each broken rule with a stable code.
//!
//! The policy applies when a password is set (a new account, a reset, a change), never at login: a
//! password accepted under an older policy still logs in. Lengths count characters (Unicode scalar
//! values), not bytes, so a Chinese passphrase is measured as its user sees it.

use serde::{Deserialize, Serialize};

/// What a new password must meet. A configuration section: every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Fewest characters a password may have.
    pub min_chars: usize,
    /// Most characters a password may have; bounds what one request can make the server hash.
    pub max_chars: usize,
    /// Refuse passwords made only of digits (birthdays, phone numbers, `12345678`), full-width digits
    /// from a Chinese input method included.
    pub reject_all_digits: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_chars: 8,
            max_chars: 128,
            reject_all_digits: true,
        }
    }
}

/// The first rule a password breaks. The message is English for logs and API clients; the UI shows
/// its own text, chosen by [`PolicyViolation::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error("the password must have at least {min} characters")]
    TooShort { min: usize },
    #[error("the password must have at most {max} characters")]
    TooLong { max: usize },
    #[error("the password must not be only spaces")]
    Blank,
    #[error("the password must not consist of digits only")]
    AllDigits,
    #[error("the password must not be the username")]
    SameAsUsername,
}

impl PolicyViolation {
    /// A stable code for the API's `{"error": {"code", ...}}` and the UI's translations.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyViolation::TooShort { .. } => "password_too_short",
            PolicyViolation::TooLong { .. } => "password_too_long",
            PolicyViolation::Blank => "password_blank",
            PolicyViolation::AllDigits => "password_all_digits",
            PolicyViolation::SameAsUsername => "password_same_as_username",
        }
    }
}

impl PasswordPolicy {
    /// Checks a new `password` for the account `username`; rules are checked in the order of
    /// [`PolicyViolation`]'s variants and the first broken one is returned.
    pub fn check(&self, username: &str, password: &str) -> Result<(), PolicyViolation> {
        let chars = password.chars().count();
        if chars < self.min_chars {
            return Err(PolicyViolation::TooShort {
                min: self.min_chars,
            });
        }
        if chars > self.max_chars {
            return Err(PolicyViolation::TooLong {
                max: self.max_chars,
            });
        }
        if password.trim().is_empty() {
            return Err(PolicyViolation::Blank);
        }
        // `is_numeric` rather than `is_ascii_digit`: "１２３４５６７８" is as guessable as "12345678".
        if self.reject_all_digits && password.chars().all(char::is_numeric) {
            return Err(PolicyViolation::AllDigits);
        }
        // Case and surrounding spaces do not make a username a secret.
        if password.trim().to_lowercase() == username.trim().to_lowercase() {
            return Err(PolicyViolation::SameAsUsername);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `password` for `username` under the default policy; `expect` is "ok" or the violation's code.
    fn check(username: &str, password: &str, expect: &str) {
        let got = match PasswordPolicy::default().check(username, password) {
            Ok(()) => "ok",
            Err(violation) => violation.code(),
        };
        assert_eq!(got, expect, "password {password:?} for user {username:?}");
    }

    #[test]
    fn default_policy_cases() {
        let cases = [
            ("zhang.san", "", "password_too_short"),
            ("zhang.san", "abc1234", "password_too_short"),
            ("zhang.san", "abcd1234", "ok"),
            ("zhang.san", "城管执法队员", "password_too_short"),
            ("zhang.san", "城市管理综合执法局", "ok"),
            ("zhang.san", &"a".repeat(128), "ok"),
            ("zhang.san", &"a".repeat(129), "password_too_long"),
            ("zhang.san", &"码".repeat(129), "password_too_long"),
            ("zhang.san", "12345678", "password_all_digits"),
            ("zhang.san", "１２３４５６７８", "password_all_digits"),
            ("zhang.san", "1234567x", "ok"),
            ("zhang.san", "        ", "password_blank"),
            (
                "zhang.san",
                "\u{3000}\u{3000}\u{3000}\u{3000}\t\t\t\t",
                "password_blank",
            ),
            ("zhang.san", "  pass  word  ", "ok"),
            ("operator01", "operator01", "password_same_as_username"),
            ("operator01", "Operator01", "password_same_as_username"),
            ("operator01", " operator01 ", "password_same_as_username"),
            ("operator01", "operator012", "ok"),
            ("13800138000", "13800138000", "password_all_digits"),
        ];
        for (username, password, expect) in cases {
            check(username, password, expect);
        }
    }

    #[test]
    fn a_relaxed_policy_from_configuration() {
        let policy: PasswordPolicy =
            serde_json::from_str(r#"{"min_chars": 4, "reject_all_digits": false}"#).unwrap();
        assert_eq!(policy.max_chars, 128);
        assert_eq!(policy.check("user", "1234"), Ok(()));
        assert_eq!(
            policy.check("user", "123"),
            Err(PolicyViolation::TooShort { min: 4 })
        );
        assert!(serde_json::from_str::<PasswordPolicy>(r#"{"min_len": 4}"#).is_err());
    }

    #[test]
    fn messages_name_the_limit() {
        assert_eq!(
            PolicyViolation::TooShort { min: 8 }.to_string(),
            "the password must have at least 8 characters"
        );
    }
}

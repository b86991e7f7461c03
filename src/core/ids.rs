//! Validated names for the things the product talks about (API.md §4 "Ids").

use std::fmt;

/// Why a name was refused; the admin API turns it into a 400 that names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName {
    pub what: &'static str,
    pub rule: &'static str,
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: must match {}", self.what, self.rule)
    }
}

const NAME_RULE: &str = "[a-z0-9][a-z0-9_-]{0,63}";
const SUBJECT_RULE: &str = "[A-Za-z0-9._@+-]{1,128}";

/// `[a-z0-9][a-z0-9_-]{0,63}`: upstream ids, secret names, user field names.
pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:expr, $rule:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(s: String) -> Result<Self, InvalidName> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl $name {
            pub fn parse(s: &str) -> Result<Self, InvalidName> {
                if $check(s) {
                    Ok(Self(s.to_string()))
                } else {
                    Err(InvalidName { what: $what, rule: $rule })
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// An upstream's id, the `{upstream}` in `/mcp/{upstream}`.
    UpstreamId, "upstream id", is_name, NAME_RULE
);
name_type!(
    /// The name of an operator secret or a subject's secret.
    SecretName, "secret name", is_name, NAME_RULE
);
name_type!(
    /// The operator's end user: one Durable Object each.
    SubjectId,
    "subject",
    |s: &str| !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._@+-".contains(&c)),
    SUBJECT_RULE
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        for ok in ["a", "0", "github", "my-server_2", &"a".repeat(64)] {
            assert!(UpstreamId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "_a", "A", "a b", "a/b", "a.b", &"a".repeat(65), "é"] {
            assert!(UpstreamId::parse(bad).is_err(), "{bad}");
        }
        for ok in ["alice", "alice@example.com", "u+1", "A.B-c_d", &"x".repeat(128)] {
            assert!(SubjectId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "a:b", "a\nb", &"x".repeat(129)] {
            assert!(SubjectId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SecretName::parse("X").unwrap_err().to_string(),
            "invalid secret name: must match [a-z0-9][a-z0-9_-]{0,63}"
        );
    }
}

//! An organisation reference as configuration, partners and destinations write it: `system|value` (the
//! organisation's identifier system and its value there). Parsed once at the edge, so the stages hold a
//! checked reference instead of a string tested with `contains('|')`.

use std::fmt;
use std::str::FromStr;

/// `system|value`: split at the first `|`; either part may be empty, as before.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgRef {
    system: String,
    value: String,
}

/// A text that is not `system|value`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' must be system|value")]
pub struct NotOrgRef(pub String);

impl OrgRef {
    /// `system|value` → the reference; a text without `|` is refused.
    pub fn parse(text: &str) -> Result<Self, NotOrgRef> {
        let (system, value) = text
            .split_once('|')
            .ok_or_else(|| NotOrgRef(text.to_owned()))?;
        Ok(Self {
            system: system.to_owned(),
            value: value.to_owned(),
        })
    }

    /// The identifier system.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// The identifier value in that system.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl FromStr for OrgRef {
    type Err = NotOrgRef;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// `system|value`, as written.
impl fmt::Display for OrgRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.system, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_system_and_value_and_writes_them_back() {
        let org: OrgRef = "urn:ietf:rfc:3986|urn:oid:1.2.3".parse().unwrap();
        assert_eq!(org.system(), "urn:ietf:rfc:3986");
        assert_eq!(org.value(), "urn:oid:1.2.3");
        assert_eq!(org.to_string(), "urn:ietf:rfc:3986|urn:oid:1.2.3");
        // Split at the first `|`; the rest is the value, written back unchanged.
        assert_eq!(OrgRef::parse("s|v|w").unwrap().value(), "v|w");
        assert_eq!(OrgRef::parse("s|v|w").unwrap().to_string(), "s|v|w");
        assert_eq!(OrgRef::parse("|").unwrap().to_string(), "|");
    }

    #[test]
    fn refuses_a_text_without_a_bar() {
        assert_eq!(
            OrgRef::parse("food-bank").unwrap_err().to_string(),
            "'food-bank' must be system|value"
        );
    }
}

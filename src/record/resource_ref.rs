//! A FHIR literal reference, `Type/id` (relative, as onedoor stores and keys them), parsed once at the
//! edge: the type must look like a FHIR resource type and the id like a FHIR id, so a stage holding a
//! [`ResourceRef`] never looks a resource up by a string that was not one (`urn:uuid:...`, an absolute URL
//! or a fragment are not store references).

use std::fmt;
use std::str::FromStr;

/// `Type/id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceRef {
    kind: String,
    id: String,
}

/// A text that is not `Type/id`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a reference Type/id")]
pub struct NotResourceRef(pub String);

impl ResourceRef {
    /// `Type/id` → the reference: `Type` an upper-case-initial ASCII name, `id` 1–64 of `A-Za-z0-9-.`.
    pub fn parse(text: &str) -> Result<Self, NotResourceRef> {
        let refused = || NotResourceRef(text.chars().take(120).collect());
        let (kind, id) = text.split_once('/').ok_or_else(refused)?;
        let kind_ok = kind.starts_with(|c: char| c.is_ascii_uppercase())
            && kind.chars().all(|c| c.is_ascii_alphanumeric());
        let id_ok = (1..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !kind_ok || !id_ok {
            return Err(refused());
        }
        Ok(Self {
            kind: kind.to_owned(),
            id: id.to_owned(),
        })
    }

    /// The resource type.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl FromStr for ResourceRef {
    type Err = NotResourceRef;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// `Type/id`, as written.
impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_type_slash_id_is_a_reference() {
        let r = ResourceRef::parse("Patient/stu-1001").unwrap();
        assert_eq!((r.kind(), r.id()), ("Patient", "stu-1001"));
        assert_eq!(r.to_string(), "Patient/stu-1001");
        for bad in [
            "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "http://x.example/fhir/Patient/1",
            "#contained",
            "Patient/",
            "patient/1",
            "Patient/a/b",
            "Patient/a b",
        ] {
            assert!(ResourceRef::parse(bad).is_err(), "{bad}");
        }
    }
}

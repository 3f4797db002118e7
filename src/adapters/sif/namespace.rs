//! Which SIF namespaces are read: SIF AU 3.4 (`http://www.sifassociation.org/datamodel/au/3.4`), the
//! transposed URI some published AU samples use (`http://www.sifassociation.org/au/datamodel/3.4`, read
//! as AU 3.4 and reported), and SIF US / North America 3.x.

use crate::adapters::QuirkLog;

/// The SIF AU 3.4 namespace as the specification gives it.
pub const AU_3_4: &str = "http://www.sifassociation.org/datamodel/au/3.4";
/// The transposed form found in published SIF AU sample files.
pub const AU_3_4_TRANSPOSED: &str = "http://www.sifassociation.org/au/datamodel/3.4";
/// Prefixes of the SIF US / North America 3.x namespaces.
const US_3_PREFIXES: &[&str] = &[
    "http://www.sifassociation.org/datamodel/us/3.",
    "http://www.sifassociation.org/datamodel/na/3.",
];

/// Accept a file's namespace (reporting tolerated forms), or say what was expected.
pub fn check(file: &str, namespace: Option<&str>, quirks: &QuirkLog) -> Result<(), String> {
    match namespace {
        Some(AU_3_4) => Ok(()),
        Some(AU_3_4_TRANSPOSED) => {
            quirks.note(
                format!("files in namespace '{AU_3_4_TRANSPOSED}' read as SIF AU 3.4 ('{AU_3_4}')"),
                None,
            );
            Ok(())
        }
        Some(ns) if US_3_PREFIXES.iter().any(|p| ns.starts_with(p)) => Ok(()),
        None => {
            quirks.note(
                format!("{file}: no XML namespace; read as SIF AU 3.4"),
                None,
            );
            Ok(())
        }
        Some(other) => Err(format!(
            "namespace '{other}' is not a SIF namespace this adapter reads (expected '{AU_3_4}', \
             '{AU_3_4_TRANSPOSED}' or a SIF US 3.x namespace)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_au_forms_and_us_are_read_and_others_refused() {
        let quirks = QuirkLog::default();
        assert!(check("a.xml", Some(AU_3_4), &quirks).is_ok());
        assert!(quirks.snapshot().is_empty());
        assert!(check("b.xml", Some(AU_3_4_TRANSPOSED), &quirks).is_ok());
        assert_eq!(quirks.snapshot().len(), 1);
        assert!(
            check(
                "c.xml",
                Some("http://www.sifassociation.org/datamodel/us/3.3"),
                &quirks
            )
            .is_ok()
        );
        let refused = check("d.xml", Some("urn:example"), &quirks).unwrap_err();
        assert!(refused.contains("'urn:example'"), "{refused}");
    }
}

//! Identity: resource ids derived from the source system and the source id, so the same student from two
//! runs of the same export is the same Patient and re-ingesting is idempotent. The id is a UUID v5, which
//! also keeps source identifiers (which may be personal, like a state student number) out of URLs.

use uuid::Uuid;

/// The namespace of onedoor's derived ids.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f6e_6564_6f6f_7200_8000_0000_0000_0001);

/// The FHIR id of the resource of type `resource_type` that stands for `source_id` in `source_system`.
pub fn resource_id(source_system: &str, resource_type: &str, source_id: &str) -> String {
    let name = format!("{source_system}|{resource_type}|{source_id}");
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

/// A relative reference (`Patient/<id>`).
pub fn reference(source_system: &str, resource_type: &str, source_id: &str) -> String {
    format!(
        "{resource_type}/{}",
        resource_id(source_system, resource_type, source_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct_per_system_and_type() {
        let a = resource_id("urn:district:a", "Patient", "123");
        assert_eq!(a, resource_id("urn:district:a", "Patient", "123"));
        assert_ne!(a, resource_id("urn:district:b", "Patient", "123"));
        assert_ne!(a, resource_id("urn:district:a", "RelatedPerson", "123"));
        assert_eq!(
            reference("urn:district:a", "Patient", "123"),
            format!("Patient/{a}")
        );
    }
}

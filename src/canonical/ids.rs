//! Identity: resource ids derived from the source system and the source id, so the same student from two
//! runs of the same export is the same Patient and re-ingesting is idempotent. The id is a UUID v5, which
//! also keeps source identifiers (which may be personal, like a state student number) out of URLs.
//!
//! The name hashed is an unambiguous encoding of (source system, resource type, source key): the system is
//! escaped (`\` and `|` preceded by `\`), the type is a FHIR resource type (no `|`), and the rest is the key.
//! A key made of several source values (a student and a guardian) is built with [`key`], which escapes each
//! part, so `a|b` + `c` and `a` + `b|c` never give the same key. For values without `\` or `|` the encoding
//! is the plain `system|type|key`, so ids of existing records do not change.

use uuid::Uuid;

/// The namespace of onedoor's derived ids.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f6e_6564_6f6f_7200_8000_0000_0000_0001);

/// Ids derived recently on this thread, at most (then forgotten, and counting starts again).
const MAX_RECENT: usize = 4_096;

thread_local! {
    /// The ids derived recently on this thread, by the name hashed: a referral export names the same school,
    /// staff member and student many times (each reference to them derives the id again), and a UUID v5 is a
    /// SHA-1 of the name. The map gives the same id the hash would: it is a pure function of the name.
    static RECENT: std::cell::RefCell<rustc_hash::FxHashMap<String, String>> = Default::default();
}

/// The FHIR id of the resource of type `resource_type` that stands for `source_id` in `source_system`.
pub fn resource_id(source_system: &str, resource_type: &str, source_id: &str) -> String {
    // Joined without the formatting machinery (this runs for every reference of every record).
    let name = [&escape(source_system), "|", resource_type, "|", source_id].concat();
    RECENT.with_borrow_mut(|recent| {
        if let Some(id) = recent.get(&name) {
            return id.clone();
        }
        let id = uuid_v5(name.as_bytes())
            .hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .to_owned();
        if recent.len() >= MAX_RECENT {
            recent.clear();
        }
        recent.insert(name, id.clone());
        id
    })
}

/// The UUID v5 of `name` in onedoor's namespace (RFC 9562: the SHA-1 of the namespace and the name, the
/// version and variant set), as `Uuid::new_v5` gives it; the SHA-1 is the `sha1` crate's, which uses the
/// processor's SHA instructions where it has them (uuid's own is portable code).
fn uuid_v5(name: &[u8]) -> Uuid {
    use sha1::Digest;
    let digest = sha1::Sha1::new()
        .chain_update(NAMESPACE.as_bytes())
        .chain_update(name)
        .finalize();
    let mut bytes = [0; 16];
    for (byte, hashed) in bytes.iter_mut().zip(digest) {
        *byte = hashed;
    }
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// A source key made of several values (`key(["st-1", "pa-1"])` = `st-1|pa-1`), each escaped so that no
/// value can contain the separator.
pub fn key<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    parts.into_iter().map(escape).collect::<Vec<_>>().join("|")
}

fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if memchr::memchr2(b'\\', b'|', value.as_bytes()).is_some() {
        value.replace('\\', "\\\\").replace('|', "\\|").into()
    } else {
        value.into()
    }
}

/// A relative reference (`Patient/<id>`).
pub fn reference(source_system: &str, resource_type: &str, source_id: &str) -> String {
    [
        resource_type,
        "/",
        &resource_id(source_system, resource_type, source_id),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v5_uuid_is_uuids_own() {
        let long = "x".repeat(55);
        let accented = "é".repeat(200);
        for name in ["", "a", "urn:district:a|Patient|1", &long, &accented] {
            let ours = uuid_v5(name.as_bytes());
            assert_eq!(ours, Uuid::new_v5(&NAMESPACE, name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn a_remembered_id_is_the_derived_one() {
        let derive = |n: u32| {
            let name = format!("urn:district:a|Patient|{n}");
            Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
        };
        // Past the bound too: the table is cleared and filled again, never wrong.
        for round in 0..2 {
            for n in 0..(MAX_RECENT as u32 + 10) {
                assert_eq!(
                    resource_id("urn:district:a", "Patient", &n.to_string()),
                    derive(n),
                    "round {round}, key {n}"
                );
            }
        }
    }

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

    #[test]
    fn composite_keys_cannot_collide_whatever_the_values_hold() {
        assert_eq!(key(["st-1", "pa-1"]), "st-1|pa-1");
        assert_ne!(key(["a|b", "c"]), key(["a", "b|c"]));
        assert_ne!(key(["a\\", "b"]), key(["a", "\\b"]));
        assert_ne!(key(["a\\|b"]), key(["a", "b"]));
        assert_ne!(
            resource_id("urn:x", "RelatedPerson", &key(["a|b", "c"])),
            resource_id("urn:x", "RelatedPerson", &key(["a", "b|c"]))
        );
        assert_ne!(
            resource_id("urn:x|Patient", "Patient", "1"),
            resource_id("urn:x", "Patient", "Patient|1")
        );
    }
}

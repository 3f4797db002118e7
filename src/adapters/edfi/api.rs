//! Ed-Fi ODS/API JSON (Data Standard 5.x Resources API): `students`, `contacts`, `studentContactAssociations`
//! and `studentSchoolAssociations` as the API's GET returns them (a JSON array of resources, or one resource),
//! in one file or a folder of files. Each object is recognised by its shape (a student has `studentUniqueId`,
//! a contact `contactUniqueId`, a contact association `contactReference` and `studentReference`, a school
//! association `schoolReference` and `entryDate`), so files may be named as the resources or otherwise.
//!
//! The records are the XML path's: values are renamed to the interchange's element names
//! (`firstName` → `Name.FirstName`, `birthSexDescriptor` → `BirthData.BirthSex`, booleans as `"true"`), so one
//! mapping serves both. A student's school (the primary, current school association) is given as
//! `school_id`. Positions are the file and the element path (`students.json [3].studentUniqueId`).

use crate::adapters::values::text_at;
use crate::adapters::{Decoded, Position, QuirkLog, RecordError, SourceRecord};
use crate::members::Members;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Largest JSON file read.
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// One API resource with where it was found.
struct Found {
    file: String,
    index: usize,
    value: Value,
}

impl Found {
    fn position(&self, field: &str) -> Position {
        Position::file(&self.file).with_field(format!("[{}].{field}", self.index))
    }

    fn text(&self, pointer: &str) -> Option<&str> {
        text_at(&self.value, pointer)
    }
}

/// The JSON files of `path`: the file itself, or the `.json` files of a folder (sorted by name).
pub fn json_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return if is_json(path) {
            vec![path.to_owned()]
        } else {
            Vec::new()
        };
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| is_json(p))
        .collect();
    files.sort();
    files
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Students, then student–contact links, read from the API JSON files.
pub fn records(files: &[PathBuf], quirks: &QuirkLog) -> Vec<Decoded> {
    let mut out = Vec::new();
    let mut found = Vec::new();
    for file in files {
        let name = crate::adapters::csv_table::display_name(file);
        // The reconciliation's rows: the array's objects (a file that cannot be read is one).
        match load(file) {
            Ok(values) => {
                quirks.rows_read(&name, values.len() as u64);
                found.extend(values)
            }
            Err(error) => {
                quirks.rows_read(&name, 1);
                out.push(Err(error))
            }
        }
    }
    let mut by_kind: HashMap<&'static str, Vec<Found>> = HashMap::new();
    for item in found {
        match shape(&item.value) {
            Some(kind) => by_kind.entry(kind).or_default().push(item),
            None => out.push(Err(RecordError::new(
                Position::file(&item.file).with_field(format!("[{}]", item.index)),
                "not an Ed-Fi students, contacts, studentContactAssociations or studentSchoolAssociations resource (expected studentUniqueId, contactUniqueId, or a studentReference with a contactReference or a schoolReference)",
            ))),
        }
    }
    let mut take = |kind| by_kind.remove(kind).unwrap_or_default();
    let (students, contacts) = (take("student"), take("contact"));
    let (links, schools) = (take("contact_link"), take("school_association"));
    let school_of = current_schools(&schools, &mut out);
    for item in &schools {
        quirks.skip_at(
            &Position::file(&item.file).with_field(format!("[{}]", item.index)),
            "a studentSchoolAssociation: read by its student (the current one names the school), not a record of its own",
        );
    }
    for item in &contacts {
        quirks.skip_at(
            &Position::file(&item.file).with_field(format!("[{}]", item.index)),
            "a contact: read by the studentContactAssociation that names it, not a record of its own",
        );
    }
    out.extend(students.iter().map(|s| student_record(s, &school_of)));
    let contacts: HashMap<&str, &Found> = contacts
        .iter()
        .filter_map(|c| Some((c.text("/contactUniqueId")?, c)))
        .collect();
    out.extend(links.iter().map(|l| link_record(l, &contacts)));
    out
}

fn load(path: &Path) -> Result<Vec<Found>, RecordError> {
    let file = crate::adapters::csv_table::display_name(path);
    let fail = |message: String| RecordError::new(Position::file(&file), message);
    let size = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot read: {e}")))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(fail(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if let Some(why) = crate::adapters::csv_table::utf16_bom(&bytes) {
        return Err(fail(why));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        RecordError::new(
            Position::line(&file, e.line() as u64),
            format!("malformed JSON: {e} (expected the JSON array an Ed-Fi API GET returns)"),
        )
    })?;
    let values = match value {
        Value::Array(values) => values,
        one => vec![one],
    };
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(index, value)| Found {
            file: file.clone(),
            index,
            value,
        })
        .collect())
}

fn shape(value: &Value) -> Option<&'static str> {
    let has = |key: &str| value.get(key).is_some();
    if has("studentReference") && has("contactReference") {
        Some("contact_link")
    } else if has("studentReference") && has("schoolReference") {
        Some("school_association")
    } else if has("studentUniqueId") {
        Some("student")
    } else if has("contactUniqueId") {
        Some("contact")
    } else {
        None
    }
}

/// Each student's current school: a primary school without an exit date first, then the latest entry.
fn current_schools(associations: &[Found], out: &mut Vec<Decoded>) -> HashMap<String, String> {
    let mut best: HashMap<String, (bool, String, String)> = HashMap::new();
    for item in associations {
        let student = item.text("/studentReference/studentUniqueId");
        let school = item
            .value
            .at(&["schoolReference", "schoolId"])
            .and_then(|v| {
                v.as_i64()
                    .map(|n| n.to_string())
                    .or(v.as_str().map(str::to_owned))
            });
        let (Some(student), Some(school)) = (student, school) else {
            out.push(Err(RecordError::new(
                item.position("schoolReference.schoolId"),
                "a studentSchoolAssociation without studentReference.studentUniqueId or schoolReference.schoolId",
            )));
            continue;
        };
        let current = item.value.get("exitWithdrawDate").is_none()
            && item.value.get("primarySchool").and_then(Value::as_bool) != Some(false);
        let entry = item.text("/entryDate").unwrap_or_default().to_owned();
        let candidate = (current, entry, school);
        let slot = best.entry(student.to_owned()).or_insert(candidate.clone());
        if (candidate.0, &candidate.1) > (slot.0, &slot.1) {
            *slot = candidate;
        }
    }
    best.into_iter()
        .map(|(k, (_, _, school))| (k, school))
        .collect()
}

fn student_record(item: &Found, school_of: &HashMap<String, String>) -> Decoded {
    let Some(id) = item.text("/studentUniqueId") else {
        return Err(RecordError::new(
            item.position("studentUniqueId"),
            "empty studentUniqueId (expected the student's unique id)",
        ));
    };
    let v = &item.value;
    let student = json!({
        "StudentUniqueId": id,
        "Name": name(v),
        "BirthData": strip(json!({
            "BirthDate": v.get("birthDate"),
            "BirthSex": v.get("birthSexDescriptor"),
            "BirthCity": v.get("birthCity"),
        })),
    });
    Ok(SourceRecord {
        kind: "student",
        key: id.to_owned(),
        group: format!("student:{id}"),
        position: item.position("studentUniqueId"),
        context: json!({ "student": strip(student), "school_id": school_of.get(id) }),
        related: Vec::new(),
        joined: Vec::new(),
    })
}

fn link_record(item: &Found, contacts: &HashMap<&str, &Found>) -> Decoded {
    let student = item.text("/studentReference/studentUniqueId");
    let contact_id = item
        .text("/contactReference/contactUniqueId")
        .unwrap_or_default();
    let Some(contact) = contacts.get(contact_id) else {
        return Err(RecordError::new(
            item.position("contactReference.contactUniqueId"),
            format!(
                "no contact '{contact_id}' in the contacts resources (expected the contactUniqueId of a contact)"
            ),
        ));
    };
    let Some(student) = student else {
        return Err(RecordError::new(
            item.position("studentReference.studentUniqueId"),
            "empty studentUniqueId (expected the student the contact is linked to)",
        ));
    };
    let v = &item.value;
    let link = strip(json!({
        "Relation": v.get("relationDescriptor"),
        "LivesWith": flag(v, "livesWith"),
        "EmergencyContactStatus": flag(v, "emergencyContactStatus"),
        "PrimaryContactStatus": flag(v, "primaryContactStatus"),
        "LegalGuardian": flag(v, "legalGuardian"),
        "ContactPriority": v.get("contactPriority").map(ToString::to_string),
        "ContactRestrictions": v.get("contactRestrictions"),
    }));
    Ok(SourceRecord {
        kind: "contact_link",
        key: format!("{student}|{contact_id}"),
        group: format!("link:{student}|{contact_id}"),
        position: item.position("contactReference"),
        context: json!({ "link": link, "contact": contact_value(contact), "student_id": student }),
        related: Vec::new(),
        joined: Vec::new(),
    })
}

/// A contact in the interchange's names: the first address (home first), e-mail and telephone.
fn contact_value(contact: &Found) -> Value {
    let v = &contact.value;
    let first = |list: &str| -> Option<&Value> {
        let items = v.get(list)?.as_array()?;
        items
            .iter()
            .find(|a| {
                a.get("addressTypeDescriptor")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.ends_with("#Home"))
            })
            .or_else(|| items.first())
    };
    let address = first("addresses").map(|a| {
        json!({
            "StreetNumberName": a.get("streetNumberName"),
            "ApartmentRoomSuiteNumber": a.get("apartmentRoomSuiteNumber"),
            "City": a.get("city"),
            "StateAbbreviation": a.get("stateAbbreviationDescriptor"),
            "PostalCode": a.get("postalCode"),
            "AddressType": a.get("addressTypeDescriptor"),
        })
    });
    strip(json!({
        "ContactUniqueId": v.get("contactUniqueId"),
        "Name": name(v),
        "Sex": v.get("sexDescriptor"),
        "Address": address,
        "ElectronicMail": { "ElectronicMailAddress": first("electronicMails").and_then(|m| m.get("electronicMailAddress")) },
        "Telephone": { "TelephoneNumber": first("telephones").and_then(|t| t.get("telephoneNumber")) },
    }))
}

fn name(v: &Value) -> Value {
    json!({
        "PersonalTitlePrefix": v.get("personalTitlePrefix"),
        "FirstName": v.get("firstName"),
        "MiddleName": v.get("middleName"),
        "LastSurname": v.get("lastSurname"),
        "GenerationCodeSuffix": v.get("generationCodeSuffix"),
        "PreferredFirstName": v.get("preferredFirstName"),
        "PreferredLastSurname": v.get("preferredLastSurname"),
    })
}

fn flag(v: &Value, key: &str) -> Option<&'static str> {
    v.get(key)
        .and_then(Value::as_bool)
        .map(|b| if b { "true" } else { "false" })
}

/// The value without nulls and empty objects, as the XML reader would give it.
fn strip(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .into_iter()
                .map(|(k, v)| (k, strip(v)))
                .filter(|(_, v)| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
                .collect();
            Value::Object(kept)
        }
        other => other,
    }
}

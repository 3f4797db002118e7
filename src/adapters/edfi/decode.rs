//! Reading an Ed-Fi interchange folder: students from `Student.xml`, student–contact links from
//! `Contact.xml` joined to their Contact (by its `id`, as `ContactReference/@ref` names it).

use super::xml::{self, Element};
use crate::adapters::oneroster::Export;
use crate::adapters::{ContextTable, Decoded, Position, RecordError, SourceRecord};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;

/// Largest interchange file read.
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// The variables an Ed-Fi mapping sees.
pub const CONTEXT: &[ContextTable] = &[
    ContextTable {
        variable: "student",
        table: "Student.xml",
        columns: &[],
    },
    ContextTable {
        variable: "link",
        table: "Contact.xml",
        columns: &[],
    },
    ContextTable {
        variable: "contact",
        table: "Contact.xml",
        columns: &[],
    },
    ContextTable {
        variable: "student_id",
        table: "Contact.xml",
        columns: &[],
    },
];

/// The record kinds this adapter yields.
pub const RECORD_KINDS: &[&str] = &["student", "contact_link"];

/// An opened interchange folder.
pub struct EdfiSource {
    students: Vec<Decoded>,
    links: Vec<Decoded>,
}

impl EdfiSource {
    /// Read `Student.xml` and `Contact.xml` from a folder (or a zip).
    pub fn open(path: &Path) -> Result<Self, String> {
        let export = Export::open(path).map_err(|e| e.to_string())?;
        let students = match export.find("Student.xml") {
            Some(file) => read(&file)?
                .into_iter()
                .filter(|e| e.as_ref().map_or(true, |e| e.name == "Student"))
                .map(|e| {
                    e.map(student_record)
                        .map_err(|why| xml::record_error("Student.xml", why))
                })
                .collect(),
            None => Vec::new(),
        };
        let links = match export.find("Contact.xml") {
            Some(file) => contact_links(read(&file)?),
            None => Vec::new(),
        };
        if students.is_empty() && links.is_empty() {
            return Err(format!(
                "{}: no Student.xml or Contact.xml found; expected an Ed-Fi interchange folder",
                path.display()
            ));
        }
        Ok(Self { students, links })
    }

    /// Students, then student–contact links.
    pub fn records(self) -> impl Iterator<Item = Decoded> {
        self.students.into_iter().chain(self.links)
    }
}

fn read(path: &Path) -> Result<Vec<Result<Element, String>>, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "{}: larger than {MAX_FILE_BYTES} bytes",
            path.display()
        ));
    }
    let mut interchange = xml::from_bytes(std::fs::read(path).map_err(|e| e.to_string())?);
    Ok(std::iter::from_fn(|| interchange.next_element()).collect())
}

fn student_record(element: Element) -> SourceRecord {
    let id = element
        .value
        .get("StudentUniqueId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    SourceRecord {
        kind: "student",
        key: id.clone(),
        group: format!("student:{id}"),
        position: Position::line("Student.xml", element.line),
        context: json!({ "student": element.value }),
        related: Vec::new(),
    }
}

fn contact_links(elements: Vec<Result<Element, String>>) -> Vec<Decoded> {
    let mut contacts: HashMap<String, Value> = HashMap::new();
    let mut out = Vec::new();
    let mut associations = Vec::new();
    for element in elements {
        match element {
            Err(why) => out.push(Err(xml::record_error("Contact.xml", why))),
            Ok(e) if e.name == "Contact" => {
                if let Some(id) = e.value.get("@id").and_then(Value::as_str) {
                    contacts.insert(id.to_owned(), e.value);
                }
            }
            Ok(e) if e.name == "StudentContactAssociation" => associations.push(e),
            Ok(_) => {}
        }
    }
    for link in associations {
        let position = Position::line("Contact.xml", link.line);
        let student = link
            .value
            .pointer("/StudentReference/StudentIdentity/StudentUniqueId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let reference = link
            .value
            .pointer("/ContactReference/@ref")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(contact) = contacts.get(&reference) else {
            out.push(Err(RecordError::new(position.with_field("ContactReference"), format!("no Contact with id '{reference}' in Contact.xml (expected the id of a Contact element)"))));
            continue;
        };
        if student.is_empty() {
            out.push(Err(RecordError::new(
                position.with_field("StudentUniqueId"),
                "empty StudentUniqueId (expected the student the contact is linked to)",
            )));
            continue;
        }
        let contact_id = contact
            .get("ContactUniqueId")
            .and_then(Value::as_str)
            .unwrap_or(&reference)
            .to_owned();
        out.push(Ok(SourceRecord {
            kind: "contact_link",
            key: format!("{student}|{contact_id}"),
            group: format!("link:{student}|{contact_id}"),
            position,
            context: json!({ "link": link.value, "contact": contact, "student_id": student }),
            related: Vec::new(),
        }));
    }
    out
}

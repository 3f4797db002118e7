//! Reading an Ed-Fi interchange folder: students from `Student.xml`, student–contact links from
//! `Contact.xml` joined to their Contact (by its `id`, as `ContactReference/@ref` names it), education
//! organizations from `EducationOrganization.xml` (with their parent, by `@ref` or identity), student–program
//! associations from `StudentProgram.xml` and student health records from `StudentHealth.xml`. Values read
//! trimmed that had spaces around them are reported as quirks with their line and element.

use super::api;
use crate::adapters::oneroster::Export;
use crate::adapters::values::text_at;
use crate::adapters::xml::{self, Element};
use crate::adapters::{ContextTable, Decoded, Position, QuirkLog, RecordError, SourceRecord};
use crate::members::Members;
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
    ContextTable {
        variable: "school_id",
        table: "studentSchoolAssociations",
        columns: &[],
    },
    ContextTable {
        variable: "org",
        table: "EducationOrganization.xml",
        columns: &[],
    },
    ContextTable {
        variable: "org_kind",
        table: "EducationOrganization.xml",
        columns: &[],
    },
    ContextTable {
        variable: "org_id",
        table: "EducationOrganization.xml",
        columns: &[],
    },
    ContextTable {
        variable: "addresses",
        table: "EducationOrganization.xml",
        columns: &[],
    },
    ContextTable {
        variable: "telephones",
        table: "EducationOrganization.xml",
        columns: &[],
    },
    ContextTable {
        variable: "parent_id",
        table: "EducationOrganization.xml",
        columns: &[],
    },
    ContextTable {
        variable: "association",
        table: "StudentProgram.xml",
        columns: &[],
    },
    ContextTable {
        variable: "association_kind",
        table: "StudentProgram.xml",
        columns: &[],
    },
    ContextTable {
        variable: "program",
        table: "StudentProgram.xml",
        columns: &[],
    },
    ContextTable {
        variable: "health",
        table: "StudentHealth.xml",
        columns: &[],
    },
];

/// The record kinds this adapter yields.
pub const RECORD_KINDS: &[&str] = &[
    "student",
    "contact_link",
    "education_organization",
    "program_association",
    "student_health",
];

/// The education organization elements of `EducationOrganization.xml` (each has an `<Name>Id`).
const EDUCATION_ORGANIZATIONS: &[&str] = &[
    "StateEducationAgency",
    "EducationServiceCenter",
    "LocalEducationAgency",
    "School",
    "PostSecondaryInstitution",
    "CommunityOrganization",
    "CommunityProvider",
    "OrganizationDepartment",
    "EducationOrganizationNetwork",
];

/// References from an education organization to its parent, most specific first.
const PARENT_REFERENCES: &[&str] = &[
    "LocalEducationAgencyReference",
    "ParentLocalEducationAgencyReference",
    "CommunityOrganizationReference",
    "ParentEducationOrganizationReference",
    "EducationServiceCenterReference",
    "StateEducationAgencyReference",
];

/// An opened interchange folder (or API JSON). Students are streamed from `Student.xml` as they are read;
/// the other files are joined, so they are read when the source opens.
#[derive(Default)]
pub struct EdfiSource {
    students: Option<StudentStream>,
    _export: Option<Export>,
    links: Vec<Decoded>,
    organizations: Vec<Decoded>,
    programs: Vec<Decoded>,
    health: Vec<Decoded>,
    api: Vec<Decoded>,
}

impl EdfiSource {
    /// Read `Student.xml`, `Contact.xml`, `EducationOrganization.xml`, `StudentProgram.xml` and
    /// `StudentHealth.xml` from a folder (or a zip); each is optional, one must be there.
    pub fn open(path: &Path, quirks: &QuirkLog) -> Result<Self, String> {
        let json = api::json_files(path);
        if path.is_file() && !json.is_empty() {
            return Ok(Self {
                api: api::records(&json, quirks),
                ..Self::default()
            });
        }
        let export = Export::open(path).map_err(|e| e.to_string())?;
        let read = |name: &str| -> Result<Option<Vec<Result<Element, String>>>, String> {
            export
                .find(name)
                .map(|file| read(&file, name, quirks))
                .transpose()
        };
        let students = export
            .find("Student.xml")
            .map(|file| StudentStream::open(&file, quirks))
            .transpose()?;
        let links = read("Contact.xml")?
            .map(|e| contact_links(e, quirks))
            .unwrap_or_default();
        let organizations = read("EducationOrganization.xml")?
            .map(|e| education_organizations(e, quirks))
            .unwrap_or_default();
        let programs = read("StudentProgram.xml")?
            .map(|e| program_associations(e, quirks))
            .unwrap_or_default();
        let health = read("StudentHealth.xml")?
            .map(health_records)
            .unwrap_or_default();
        let source = Self {
            students,
            links,
            organizations,
            programs,
            health,
            api: api::records(&api::json_files(export.dir()), quirks),
            _export: Some(export),
        };
        if source.is_empty() {
            return Err(format!(
                "{}: no Student.xml, Contact.xml, EducationOrganization.xml, StudentProgram.xml, StudentHealth.xml or Ed-Fi API .json file found; expected an Ed-Fi interchange folder or API resources",
                path.display()
            ));
        }
        Ok(source)
    }

    fn is_empty(&self) -> bool {
        self.students.is_none()
            && [
                &self.links,
                &self.organizations,
                &self.programs,
                &self.health,
                &self.api,
            ]
            .iter()
            .all(|v| v.is_empty())
    }

    /// Education organizations, students, student–contact links, program associations, health records, then
    /// what the API JSON files hold (students, then student–contact links).
    pub fn records(self) -> impl Iterator<Item = Decoded> {
        self.organizations
            .into_iter()
            .chain(self.students.into_iter().flatten())
            .chain(self.links)
            .chain(self.programs)
            .chain(self.health)
            .chain(self.api)
    }
}

fn read(
    path: &Path,
    file: &str,
    quirks: &QuirkLog,
) -> Result<Vec<Result<Element, String>>, String> {
    let mut interchange =
        xml::from_file(path, MAX_FILE_BYTES).map_err(|e| format!("{file}: {e}"))?;
    let elements: Vec<Result<Element, String>> =
        std::iter::from_fn(|| interchange.next_element()).collect();
    for value in interchange.take_untrimmed() {
        quirks.note(untrimmed_message(file, &value), Some(value.line));
    }
    // Elements read, counted by the line each starts on (the reconciliation's rows).
    let lines: std::collections::BTreeSet<u64> = elements
        .iter()
        .filter_map(|e| match e {
            Ok(element) => Some(element.line),
            Err(why) => xml::record_error(file, why.clone()).position.line,
        })
        .collect();
    quirks.rows_read(file, lines.len() as u64);
    Ok(elements)
}

/// `Student.xml`, read one Student at a time.
struct StudentStream {
    interchange: xml::Interchange<std::io::BufReader<std::fs::File>>,
    quirks: QuirkLog,
    /// Elements read (by distinct start line: lines only grow) and the line of the last one.
    read: (u64, u64),
}

impl StudentStream {
    fn open(path: &Path, quirks: &QuirkLog) -> Result<Self, String> {
        Ok(Self {
            interchange: xml::from_file(path, MAX_FILE_BYTES)
                .map_err(|e| format!("Student.xml: {e}"))?,
            quirks: quirks.clone(),
            read: (0, 0),
        })
    }
}

impl Iterator for StudentStream {
    type Item = Decoded;

    fn next(&mut self) -> Option<Decoded> {
        loop {
            let Some(next) = self.interchange.next_element() else {
                self.quirks.rows_read("Student.xml", self.read.0);
                return None;
            };
            for value in self.interchange.take_untrimmed() {
                self.quirks
                    .note(untrimmed_message("Student.xml", &value), Some(value.line));
            }
            let next = next.map_err(|why| xml::record_error("Student.xml", why));
            let line = match &next {
                Ok(element) => Some(element.line),
                Err(error) => error.position.line,
            };
            if let Some(line) = line.filter(|l| *l != self.read.1) {
                self.read = (self.read.0 + 1, line);
            }
            match next {
                Ok(element) if element.name == "Student" => {
                    return Some(Ok(student_record(element)));
                }
                Ok(element) => self.quirks.skip(
                    "Student.xml",
                    element.line,
                    format!("a {} element, not a Student (not read)", element.name),
                ),
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

/// The quirk for a value read trimmed. The value is quoted only for organization and program codes, never
/// for what could identify a person.
fn untrimmed_message(file: &str, value: &xml::Untrimmed) -> String {
    let element = value.path.rsplit('/').next().unwrap_or_default();
    let public = element.ends_with("EducationOrganizationId")
        || element.ends_with("SchoolId")
        || element.starts_with("Program")
        || value.raw.trim_start().starts_with("uri://");
    let quoted = if public {
        format!(" '{}'", value.raw)
    } else {
        String::new()
    };
    format!(
        "{file}: {}{quoted} has spaces around the value, which an Ed-Fi id or code must not have; read trimmed",
        value.path
    )
}

fn education_organizations(
    elements: Vec<Result<Element, String>>,
    quirks: &QuirkLog,
) -> Vec<Decoded> {
    let mut ids_by_ref: HashMap<String, String> = HashMap::new();
    let mut kept = Vec::new();
    let mut out = Vec::new();
    for element in elements {
        match element {
            Err(why) => out.push(Err(xml::record_error("EducationOrganization.xml", why))),
            Ok(e) if EDUCATION_ORGANIZATIONS.contains(&e.name.as_str()) => {
                let id = text_at(&e.value, &format!("/{}Id", e.name)).map(str::to_owned);
                if let (Some(xml_id), Some(id)) = (text_at(&e.value, "/@id"), &id) {
                    ids_by_ref.insert(xml_id.to_owned(), id.clone());
                }
                kept.push((e, id));
            }
            Ok(e) => {
                quirks.note(
                    format!(
                        "EducationOrganization.xml: {} elements are not education organizations (not read)",
                        e.name
                    ),
                    Some(e.line),
                );
                quirks.skip(
                    "EducationOrganization.xml",
                    e.line,
                    format!(
                        "a {} element, not an education organization (not read)",
                        e.name
                    ),
                );
            }
        }
    }
    for (element, id) in kept {
        out.push(organization_record(element, id, &ids_by_ref));
    }
    out
}

fn organization_record(
    element: Element,
    id: Option<String>,
    ids_by_ref: &HashMap<String, String>,
) -> Decoded {
    let position = Position::line("EducationOrganization.xml", element.line);
    let Some(id) = id else {
        return Err(RecordError::new(
            position.with_field(format!("{}/{}Id", element.name, element.name)),
            format!(
                "a {} without its {}Id (expected the EducationOrganizationId)",
                element.name, element.name
            ),
        ));
    };
    let parent = PARENT_REFERENCES.iter().find_map(|name| {
        let reference = element.value.get(*name)?;
        text_at(reference, "/@ref")
            .and_then(|r| ids_by_ref.get(r).cloned())
            .or_else(|| {
                let identity = reference.as_object()?.values().next()?;
                identity
                    .as_object()?
                    .values()
                    .find_map(|v| v.as_str().map(str::to_owned))
            })
    });
    Ok(SourceRecord {
        kind: "education_organization",
        key: id.clone(),
        group: format!("education_organization:{id}"),
        position,
        context: json!({
            "addresses": as_list(element.value.get("Address")),
            "telephones": as_list(element.value.get("InstitutionTelephone")),
            "org": element.value,
            "org_kind": element.name,
            "org_id": id,
            "parent_id": parent,
        }),
        related: Vec::new(),
        joined: Vec::new(),
    })
}

/// A repeatable element as a list, whether the XML had it once (an object) or more often (a list).
fn as_list(value: Option<&Value>) -> Value {
    match value {
        None => Value::Array(Vec::new()),
        Some(Value::Array(list)) => Value::Array(list.clone()),
        Some(one) => Value::Array(vec![one.clone()]),
    }
}

fn program_associations(elements: Vec<Result<Element, String>>, quirks: &QuirkLog) -> Vec<Decoded> {
    let mut out = Vec::new();
    for element in elements {
        match element {
            Err(why) => out.push(Err(xml::record_error("StudentProgram.xml", why))),
            Ok(e) if e.name.ends_with("ProgramAssociation") => out.push(program_record(e)),
            Ok(e) => {
                quirks.note(
                    format!(
                        "StudentProgram.xml: {} elements are not program associations (not read)",
                        e.name
                    ),
                    Some(e.line),
                );
                quirks.skip(
                    "StudentProgram.xml",
                    e.line,
                    format!("a {} element, not a program association (not read)", e.name),
                );
            }
        }
    }
    out
}

fn program_record(element: Element) -> Decoded {
    let position = Position::line("StudentProgram.xml", element.line);
    let value = &element.value;
    let student = text_at(value, "/StudentReference/StudentIdentity/StudentUniqueId");
    let identity = value.at(&["ProgramReference", "ProgramIdentity"]);
    let program_org = identity.and_then(|i| {
        text_at(
            i,
            "/EducationOrganizationReference/EducationOrganizationIdentity/EducationOrganizationId",
        )
    });
    let (program_name, program_type) = (
        identity.and_then(|i| text_at(i, "/ProgramName")),
        identity.and_then(|i| text_at(i, "/ProgramType")),
    );
    let begin = text_at(value, "/BeginDate");
    let missing = [
        ("StudentReference/StudentIdentity/StudentUniqueId", student),
        ("ProgramReference/ProgramIdentity/ProgramName", program_name),
        ("ProgramReference/ProgramIdentity/ProgramType", program_type),
        ("BeginDate", begin),
    ]
    .into_iter()
    .find(|(_, v)| v.is_none());
    if let Some((field, _)) = missing {
        return Err(RecordError::new(
            position.with_field(format!("{}/{field}", element.name)),
            format!(
                "a {} without {field} (expected by the Ed-Fi XSD)",
                element.name
            ),
        ));
    }
    let (student, begin) = (student.unwrap_or_default(), begin.unwrap_or_default());
    let key = format!(
        "{student}|{}|{}|{}|{begin}",
        program_org.unwrap_or_default(),
        program_type.unwrap_or_default(),
        program_name.unwrap_or_default()
    );
    let context = json!({
        "association": value,
        "association_kind": element.name,
        "student_id": student,
        "program": {
            "EducationOrganizationId": program_org,
            "ProgramName": program_name,
            "ProgramType": program_type,
        },
    });
    Ok(SourceRecord {
        kind: "program_association",
        group: format!("program:{key}"),
        key,
        position,
        context,
        related: Vec::new(),
        joined: Vec::new(),
    })
}

fn health_records(elements: Vec<Result<Element, String>>) -> Vec<Decoded> {
    elements
        .into_iter()
        .map(|element| {
            let element = element.map_err(|why| xml::record_error("StudentHealth.xml", why))?;
            let student = text_at(
                &element.value,
                "/StudentReference/StudentIdentity/StudentUniqueId",
            )
            .unwrap_or_default()
            .to_owned();
            Ok(SourceRecord {
                kind: "student_health",
                key: student.clone(),
                group: format!("health:{student}:{}", element.line),
                position: Position::line("StudentHealth.xml", element.line),
                context: json!({ "health": element.value, "student_id": student }),
                related: Vec::new(),
                joined: Vec::new(),
            })
        })
        .collect()
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
        joined: Vec::new(),
    }
}

fn contact_links(elements: Vec<Result<Element, String>>, quirks: &QuirkLog) -> Vec<Decoded> {
    let mut contacts: HashMap<String, Value> = HashMap::new();
    let mut out = Vec::new();
    let mut associations = Vec::new();
    for element in elements {
        match element {
            Err(why) => out.push(Err(xml::record_error("Contact.xml", why))),
            Ok(e) if e.name == "Contact" => {
                quirks.skip(
                    "Contact.xml",
                    e.line,
                    "a Contact: read by the StudentContactAssociation that names it, not a record of its own",
                );
                if let Some(id) = e.value.get("@id").and_then(Value::as_str) {
                    contacts.insert(id.to_owned(), e.value);
                }
            }
            Ok(e) if e.name == "StudentContactAssociation" => associations.push(e),
            Ok(e) => quirks.skip(
                "Contact.xml",
                e.line,
                format!(
                    "a {} element, not a Contact or StudentContactAssociation (not read)",
                    e.name
                ),
            ),
        }
    }
    for link in associations {
        let position = Position::line("Contact.xml", link.line);
        let student = link
            .value
            .at(&["StudentReference", "StudentIdentity", "StudentUniqueId"])
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
            joined: Vec::new(),
        }));
    }
    out
}

//! Reading SIF objects from every `.xml` file of an export and joining them: a relationship to its contact and
//! student, a student to their school, a wellbeing event or alert to its student and the student's contacts.
//! Each object is read once: the same object (same RefId) again in another file is skipped and reported.

use super::namespace;
use crate::adapters::values::each;
use crate::adapters::xml::{self, Element};
use crate::adapters::{ContextTable, Decoded, Position, QuirkLog, RecordError, SourceRecord};
use crate::members::Members;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

/// Largest SIF file read.
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// The SIF objects this adapter reads (a file whose root is one of them is that one object).
const OBJECTS: &[&str] = &[
    "SchoolInfo",
    "StudentPersonal",
    "StudentContactPersonal",
    "StudentContactRelationship",
    "StudentSchoolEnrollment",
    "WellbeingEvent",
    "WellbeingAlert",
    "WellbeingResponse",
    "PersonalisedPlan",
    "WellbeingCharacteristic",
    "WellbeingAppeal",
];

/// Objects read and reported, from which the shipped mapping builds nothing, with their record kind.
const CARRIED: &[(&str, &str)] = &[
    ("WellbeingResponse", "wellbeing_response"),
    ("WellbeingCharacteristic", "wellbeing_characteristic"),
    ("WellbeingAppeal", "wellbeing_appeal"),
];

/// The variables a SIF mapping sees.
pub const CONTEXT: &[ContextTable] = &[
    ContextTable {
        variable: "school",
        table: "SchoolInfo",
        columns: &[],
    },
    ContextTable {
        variable: "student",
        table: "StudentPersonal",
        columns: &[],
    },
    ContextTable {
        variable: "enrollment",
        table: "StudentSchoolEnrollment",
        columns: &[],
    },
    ContextTable {
        variable: "link",
        table: "StudentContactRelationship",
        columns: &[],
    },
    ContextTable {
        variable: "contact",
        table: "StudentContactPersonal",
        columns: &[],
    },
    ContextTable {
        variable: "student_id",
        table: "StudentPersonal",
        columns: &[],
    },
    ContextTable {
        variable: "wellbeing",
        table: "WellbeingEvent",
        columns: &[],
    },
    ContextTable {
        variable: "object",
        table: "WellbeingEvent",
        columns: &[],
    },
    ContextTable {
        variable: "categories",
        table: "WellbeingEvent",
        columns: &[],
    },
    ContextTable {
        variable: "record",
        table: "WellbeingResponse",
        columns: &[],
    },
    ContextTable {
        variable: "plan",
        table: "PersonalisedPlan",
        columns: &[],
    },
    ContextTable {
        variable: "plans",
        table: "PersonalisedPlan",
        columns: &[],
    },
];

/// The record kinds this adapter yields.
pub const RECORD_KINDS: &[&str] = &[
    "school",
    "student",
    "contact_link",
    "wellbeing",
    "wellbeing_response",
    "personalised_plan",
    "wellbeing_characteristic",
    "wellbeing_appeal",
];

/// One object read from a file.
struct Object {
    file: String,
    element: Element,
}

impl Object {
    fn position(&self) -> Position {
        Position::line(&self.file, self.element.line)
    }

    fn text(&self, field: &str) -> String {
        self.element
            .value
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    fn ref_id(&self) -> String {
        let attribute = if self.element.name == "StudentContactRelationship" {
            "@StudentContactRelationshipRefId"
        } else {
            "@RefId"
        };
        self.text(attribute)
    }
}

/// An opened SIF export: its decoded records, in order.
pub struct SifSource {
    records: Vec<Decoded>,
}

impl SifSource {
    /// Read every `.xml` file of a folder, a zip, or one `.xml` file.
    pub fn open(path: &Path, quirks: &QuirkLog) -> Result<Self, String> {
        let (files, _export) = xml::files_of(path)?;
        if files.is_empty() {
            return Err(format!(
                "{}: no .xml file found; expected SIF objects or collections",
                path.display()
            ));
        }
        let mut objects = Vec::new();
        let mut records = Vec::new();
        for file in &files {
            read_file(file, quirks, &mut objects, &mut records);
        }
        // Elements read per file, counted by the line each starts on (the reconciliation's rows).
        let mut read: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for object in &objects {
            read.entry(object.file.clone())
                .or_default()
                .insert(object.element.line);
        }
        for error in records.iter().filter_map(|r| r.as_ref().err()) {
            if let Some(line) = error.position.line {
                read.entry(error.position.file.clone())
                    .or_default()
                    .insert(line);
            }
        }
        let objects = deduplicate(objects, quirks, &mut records);
        let joined = Joined::new(objects);
        joined.report_unlinked_contacts(quirks);
        joined.skip_joined_only(quirks);
        records.extend(joined.records());
        for (file, lines) in read {
            quirks.rows_read(&file, lines.len() as u64);
        }
        Ok(Self { records })
    }

    /// The records: problems with files first, then schools, students with their contacts, wellbeing
    /// records and the objects carried without a mapping.
    pub fn records(self) -> impl Iterator<Item = Decoded> {
        self.records.into_iter()
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn read_file(path: &Path, quirks: &QuirkLog, objects: &mut Vec<Object>, out: &mut Vec<Decoded>) {
    let file = file_name(path);
    let mut reader = match xml::from_file(path, MAX_FILE_BYTES) {
        Ok(reader) => reader.with_root_objects(OBJECTS),
        Err(why) => return out.push(Err(RecordError::new(Position::file(&file), why))),
    };
    let mut checked = false;
    while let Some(next) = reader.next_element() {
        if !checked {
            checked = true;
            let namespace = reader.root().and_then(|(_, ns)| ns);
            if let Err(why) = namespace::check(&file, namespace, quirks) {
                out.push(Err(RecordError::new(Position::file(&file), why)));
                return;
            }
        }
        match next {
            Ok(element) if OBJECTS.contains(&element.name.as_str()) => objects.push(Object {
                file: file.clone(),
                element,
            }),
            Ok(element) => out.push(Err(RecordError::new(
                Position::line(&file, element.line).with_field(&element.name),
                format!(
                    "<{}> is not a SIF object this adapter reads (expected one of: {})",
                    element.name,
                    OBJECTS.join(", ")
                ),
            ))),
            Err(why) => out.push(Err(xml::record_error(&file, why))),
        }
    }
}

/// Each object once: the same object (same RefId, same content) again is skipped and reported; an object
/// with the RefId of another and other content is a conflict, rejected at its line naming the first (which
/// is the one used).
fn deduplicate(objects: Vec<Object>, quirks: &QuirkLog, out: &mut Vec<Decoded>) -> Vec<Object> {
    let mut first: HashMap<(String, String), (String, u64, u64)> = HashMap::new();
    let mut kept = Vec::with_capacity(objects.len());
    for object in objects {
        let key = (object.element.name.clone(), object.ref_id());
        if key.1.is_empty() {
            kept.push(object);
            continue;
        }
        let content = serde_json::to_string(&object.element.value).unwrap_or_default();
        let Some((file, line, seen)) = first.get(&key) else {
            first.insert(
                key,
                (
                    object.file.clone(),
                    object.element.line,
                    fingerprint(&content),
                ),
            );
            kept.push(object);
            continue;
        };
        if *seen != fingerprint(&content) {
            out.push(Err(RecordError::new(
                object.position().with_field("RefId"),
                format!(
                    "a {} with RefId '{}' was already read from {file} line {line} with other content; this one is not used (expected each object once)",
                    object.element.name, key.1
                ),
            )));
            continue;
        }
        quirks.note(
            format!(
                "{}: a {} already read from {file} (same RefId) is skipped",
                object.file, object.element.name
            ),
            Some(object.element.line),
        );
        quirks.skip(
            &object.file,
            object.element.line,
            format!(
                "duplicate: the same {} (RefId) was read from {file}",
                object.element.name
            ),
        );
    }
    kept
}

/// A content digest, to tell a repeat of an object from a conflicting one.
fn fingerprint(content: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut hasher);
    hasher.finish()
}

/// The objects of an export, indexed for the joins.
struct Joined {
    by_name: HashMap<&'static str, Vec<Object>>,
}

impl Joined {
    fn new(objects: Vec<Object>) -> Self {
        let mut by_name: HashMap<&'static str, Vec<Object>> = HashMap::new();
        for object in objects {
            let name = OBJECTS
                .iter()
                .find(|n| **n == object.element.name)
                .copied()
                .unwrap_or_default();
            by_name.entry(name).or_default().push(object);
        }
        Self { by_name }
    }

    fn all(&self, name: &str) -> &[Object] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Objects of `name` by the student they are about (`StudentPersonalRefId`).
    fn by_student(&self, name: &str) -> HashMap<String, Vec<&Object>> {
        let mut found: HashMap<String, Vec<&Object>> = HashMap::new();
        for object in self.all(name) {
            found
                .entry(object.text("StudentPersonalRefId"))
                .or_default()
                .push(object);
        }
        found
    }

    fn by_ref(&self, name: &str) -> HashMap<String, &Object> {
        self.all(name).iter().map(|o| (o.ref_id(), o)).collect()
    }

    /// Contacts and enrollments are not records of their own: a contact travels with the relationship that
    /// links it to a student, an enrollment with its student (the first per student gives the school).
    /// Each is listed as skipped with that reason, so every element read is accounted for.
    fn skip_joined_only(&self, quirks: &QuirkLog) {
        let reasons = [
            (
                "StudentContactPersonal",
                "a contact: read by the StudentContactRelationship that links it to a student, not a record of its own",
            ),
            (
                "StudentSchoolEnrollment",
                "an enrollment: read by its student (the first per student names the school), not a record of its own",
            ),
        ];
        for (name, reason) in reasons {
            for object in self.all(name) {
                quirks.skip(&object.file, object.element.line, reason);
            }
        }
    }

    /// Contacts no relationship links to a student are not sent (a contact travels with their student).
    fn report_unlinked_contacts(&self, quirks: &QuirkLog) {
        let linked: HashSet<String> = self
            .all("StudentContactRelationship")
            .iter()
            .map(|l| l.text("StudentContactPersonalRefId"))
            .collect();
        for contact in self.all("StudentContactPersonal") {
            if !linked.contains(&contact.ref_id()) {
                quirks.note(
                    "StudentContactPersonal objects that no StudentContactRelationship links to a student are not sent",
                    None,
                );
            }
        }
    }

    fn records(&self) -> Vec<Decoded> {
        let mut out: Vec<Decoded> = self.all("SchoolInfo").iter().map(school_record).collect();
        let students = self.by_ref("StudentPersonal");
        let student_records = self.student_records(&mut out);
        for name in ["StudentContactRelationship", "PersonalisedPlan"] {
            for object in self.all(name) {
                let student = object.text("StudentPersonalRefId");
                if !students.contains_key(&student) {
                    out.push(Err(unknown_student(object, &student)));
                }
            }
        }
        let schools = self.by_ref("SchoolInfo");
        for name in ["WellbeingEvent", "WellbeingAlert"] {
            for object in self.all(name) {
                out.push(wellbeing_record(object, &student_records, &schools));
            }
        }
        for (name, kind) in CARRIED {
            out.extend(self.all(name).iter().map(|o| Ok(carried_record(o, kind))));
        }
        out
    }

    /// Each student followed by their contact links; returns them by student RefId for the wellbeing joins.
    fn student_records(&self, out: &mut Vec<Decoded>) -> HashMap<String, Vec<SourceRecord>> {
        let contacts = self.by_ref("StudentContactPersonal");
        let schools = self.by_ref("SchoolInfo");
        let mut enrollments: HashMap<String, &Object> = HashMap::new();
        for enrollment in self.all("StudentSchoolEnrollment") {
            enrollments
                .entry(enrollment.text("StudentPersonalRefId"))
                .or_insert(enrollment);
        }
        let links = self.by_student("StudentContactRelationship");
        let plans = self.by_student("PersonalisedPlan");
        let mut joined = HashMap::new();
        for student in self.all("StudentPersonal") {
            let id = student.ref_id();
            if id.is_empty() {
                out.push(Err(RecordError::new(
                    student.position().with_field("RefId"),
                    "StudentPersonal without a RefId (expected the object's GUID)",
                )));
                continue;
            }
            let enrollment = enrollments.get(&id).copied();
            let school = enrollment.and_then(|e| schools.get(&e.text("SchoolInfoRefId")).copied());
            let mut group = vec![student_record(student, enrollment, school)];
            for link in links.get(&id).into_iter().flatten() {
                match link_record(link, &id, &contacts) {
                    Ok(record) => group.push(record),
                    Err(error) => out.push(Err(error)),
                }
            }
            for plan in plans.get(&id).into_iter().flatten() {
                group.push(plan_record(plan, &id));
            }
            out.extend(group.iter().cloned().map(Ok));
            joined.insert(id, group);
        }
        joined
    }
}

fn school_record(object: &Object) -> Decoded {
    let id = object.ref_id();
    if id.is_empty() {
        return Err(RecordError::new(
            object.position().with_field("RefId"),
            "SchoolInfo without a RefId (expected the object's GUID)",
        ));
    }
    Ok(SourceRecord {
        kind: "school",
        key: id.clone(),
        group: format!("school:{id}"),
        position: object.position(),
        context: json!({ "school": object.element.value }),
        related: Vec::new(),
        joined: Vec::new(),
    })
}

fn student_record(
    student: &Object,
    enrollment: Option<&Object>,
    school: Option<&Object>,
) -> SourceRecord {
    let id = student.ref_id();
    SourceRecord {
        kind: "student",
        key: id.clone(),
        group: format!("student:{id}"),
        position: student.position(),
        context: json!({
            "student": student.element.value,
            "enrollment": enrollment.map(|e| &e.element.value),
            "school": school.map(|s| &s.element.value),
        }),
        related: Vec::new(),
        joined: Vec::new(),
    }
}

fn link_record(
    link: &Object,
    student: &str,
    contacts: &HashMap<String, &Object>,
) -> Result<SourceRecord, RecordError> {
    let reference = link.text("StudentContactPersonalRefId");
    let contact = contacts.get(&reference).ok_or_else(|| {
        RecordError::new(
            link.position().with_field("StudentContactPersonalRefId"),
            format!(
                "no StudentContactPersonal with RefId '{reference}' in this export (expected the contact \
                 the relationship links to)"
            ),
        )
    })?;
    Ok(SourceRecord {
        kind: "contact_link",
        key: format!("{student}|{reference}"),
        group: format!("student:{student}"),
        position: link.position(),
        context: json!({
            "link": link.element.value,
            "contact": contact.element.value,
            "student_id": student,
        }),
        related: Vec::new(),
        joined: Vec::new(),
    })
}

fn plan_record(plan: &Object, student: &str) -> SourceRecord {
    let id = plan.ref_id();
    SourceRecord {
        kind: "personalised_plan",
        key: id,
        group: format!("student:{student}"),
        position: plan.position(),
        context: json!({ "plan": plan.element.value, "student_id": student }),
        related: Vec::new(),
        joined: Vec::new(),
    }
}

fn unknown_student(object: &Object, student: &str) -> RecordError {
    RecordError::new(
        object.position().with_field("StudentPersonalRefId"),
        format!(
            "no StudentPersonal with RefId '{student}' in this export (expected the student the {} is about)",
            object.element.name
        ),
    )
}

fn wellbeing_record(
    object: &Object,
    students: &HashMap<String, Vec<SourceRecord>>,
    schools: &HashMap<String, &Object>,
) -> Decoded {
    let student = object.text("StudentPersonalRefId");
    let Some(student_group) = students.get(&student) else {
        return Err(unknown_student(object, &student));
    };
    let id = object.ref_id();
    Ok(SourceRecord {
        kind: "wellbeing",
        key: id.clone(),
        group: format!("wellbeing:{id}"),
        position: object.position(),
        context: json!({
            "wellbeing": object.element.value,
            "object": object.element.name,
            "categories": categories(&object.element.value),
            "student_id": student,
            "school": schools.get(&object.text("SchoolInfoRefId")).map(|s| &s.element.value),
            "plans": student_group
                .iter()
                .filter(|r| r.kind == "personalised_plan")
                .map(|r| r.key.clone())
                .collect::<Vec<_>>(),
        }),
        related: student_group.clone(),
        joined: Vec::new(),
    })
}

/// Every category code of a wellbeing event or alert, in the order a person reading it would: the alert
/// category, event categories and their sub-categories, then follow-up action categories.
fn categories(value: &Value) -> Vec<String> {
    let mut codes = Vec::new();
    let mut push = |v: Option<&Value>| {
        for item in each(v) {
            if let Some(code) = item.as_str().map(str::trim).filter(|c| !c.is_empty()) {
                codes.push(code.to_owned());
            }
        }
    };
    push(value.get("WellbeingAlertCategory"));
    for category in each(value.at(&["WellbeingEventCategoryList", "WellbeingEventCategory"])) {
        push(category.get("EventCategory"));
        push(category.at(&["WellbeingEventSubCategoryList", "WellbeingEventSubCategory"]));
    }
    for action in each(value.at(&["FollowUpActionList", "FollowUpAction"])) {
        push(action.get("FollowUpActionCategory"));
    }
    let mut seen = HashSet::new();
    codes.retain(|c| seen.insert(c.clone()));
    codes
}

fn carried_record(object: &Object, kind: &'static str) -> SourceRecord {
    let id = object.ref_id();
    SourceRecord {
        kind,
        key: id.clone(),
        group: format!("{kind}:{id}"),
        position: object.position(),
        context: json!({ "record": object.element.value, "student_id": object.text("StudentPersonalRefId") }),
        related: Vec::new(),
        joined: Vec::new(),
    }
}

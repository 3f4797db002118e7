//! Decoding referral rows and joining each to its student in the roster.

use crate::adapters::csv_table::{CsvTable, TableError, TableSpec, TextEncoding};
use crate::adapters::oneroster::tables as roster_tables;
use crate::adapters::oneroster::{OneRosterSource, StaffLookup};
use crate::adapters::source::Completion;
use crate::adapters::values::{object, values_or_null};
use crate::adapters::{ContextTable, Decoded, Position, QuirkLog, RecordError, SourceRecord};
use crate::members::Members;
use crate::record::id_table::IdTable;
use serde_json::Value;
use std::path::{Path, PathBuf};

const REFERRAL_COLUMNS: &[&str] = &[
    "referral_id",
    "student_id",
    "need_category",
    "urgency",
    "referred_on",
    "referring_staff_id",
    "referring_staff_name",
    "target_agency",
    "target_service",
    "reason",
    "notes",
    "consent_reference",
];

/// The referral CSV table.
pub const REFERRALS: TableSpec = TableSpec {
    file: "referrals.csv",
    columns: REFERRAL_COLUMNS,
    required: &[
        "referral_id",
        "student_id",
        "need_category",
        "target_agency",
    ],
    aliases: &[
        ("referralid", "referral_id"),
        ("student", "student_id"),
        ("studentid", "student_id"),
        ("need", "need_category"),
        ("category", "need_category"),
        ("priority", "urgency"),
        ("date", "referred_on"),
        ("agency", "target_agency"),
        ("note", "notes"),
        ("consent", "consent_reference"),
    ],
};

/// The variables a referral mapping sees.
pub const CONTEXT: &[ContextTable] = &[
    ContextTable {
        variable: "referral",
        table: "referrals.csv",
        columns: REFERRAL_COLUMNS,
    },
    ContextTable {
        variable: "student",
        table: "users.csv",
        columns: roster_tables::USER_COLUMNS,
    },
    ContextTable {
        variable: "staff",
        table: "users.csv",
        columns: roster_tables::USER_COLUMNS,
    },
    ContextTable {
        variable: "school",
        table: "orgs.csv",
        columns: roster_tables::ORG_COLUMNS,
    },
];

/// The record kinds this adapter yields.
pub const RECORD_KINDS: &[&str] = &["referral"];

/// An opened referral file, joined to a roster.
pub struct ReferralSource<'r> {
    table: CsvTable,
    roster: &'r OneRosterSource,
    quirks: QuirkLog,
}

impl<'r> ReferralSource<'r> {
    /// Open `referrals.csv` (the file, or a folder holding it).
    pub fn open(
        path: &Path,
        roster: &'r OneRosterSource,
        encoding: TextEncoding,
        quirks: &QuirkLog,
    ) -> Result<Self, TableError> {
        let file = referral_file(path);
        Ok(Self {
            table: CsvTable::open(&file, &REFERRALS, encoding, quirks)?,
            roster,
            quirks: quirks.clone(),
        })
    }

    /// The table's resolved columns (for coverage reports).
    pub fn columns(&self) -> &[String] {
        self.table.columns()
    }

    /// The table's file name.
    pub fn file(&self) -> &str {
        self.table.file()
    }

    /// One record per referral row as read (its id checked once, its values), or the reason the row
    /// cannot be used; each is finished by [`Completion::complete`], which joins it to the roster.
    pub(crate) fn read_records(
        &self,
    ) -> Result<impl Iterator<Item = Decoded> + Send + '_, TableError> {
        // Each referral id seen, by its 128-bit hash, past a number on disk (`IdTable`).
        let mut seen = IdTable::default();
        Ok(self.table.rows()?.map(move |item| {
            let (_, row) = item?;
            let position = Position::line(self.table.file(), row.line);
            let id = row.get("referral_id").ok_or_else(|| missing(&position, "referral_id", "the referral's id in the sending system"))?.to_owned();
            let first = seen.insert(&id, [row.line, 0, 0]).map_err(|err| {
                RecordError::new(
                    position.clone().with_field("referral_id"),
                    format!("cannot check referral_id '{id}' against the ids seen: {err}"),
                )
            })?;
            if let Some([first, ..]) = first {
                return Err(RecordError::new(
                    position.with_field("referral_id"),
                    format!("duplicate referral_id '{id}' (first seen on line {first}); expected each referral once"),
                ));
            }
            if row.get("student_id").is_none() {
                return Err(missing(&position, "student_id", "the student's sourcedId in the roster"));
            }
            Ok(SourceRecord {
                kind: "referral",
                key: id.clone(),
                group: id,
                position,
                context: Value::Object(row.values),
                related: Vec::new(),
                joined: Vec::new(),
            })
        }))
    }
}

impl Completion for ReferralSource<'_> {
    /// The referral row joined to its student, the student's school and the referring staff member.
    fn complete(&self, read: SourceRecord) -> Decoded {
        let SourceRecord {
            key,
            group,
            position,
            context,
            ..
        } = read;
        let Value::Object(mut values) = context else {
            return Err(RecordError::new(
                position,
                "a referral row read as something other than its values",
            ));
        };
        let student_id = values
            .get("student_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let related = self.roster.student(student_id).map_err(|why| {
            RecordError::new(
                position.clone().with_field("student_id"),
                format!("{why}; expected the sourcedId of a student in the roster"),
            )
        })?;
        let student = related.first().map(|r| &r.context);
        let from_student = |name: &str| {
            student
                .and_then(|s| s.get(name))
                .cloned()
                .unwrap_or_default()
        };
        let line = position.line.unwrap_or_default();
        let staff = self.staff(&mut values, line);
        // The roster rows the referral reads: a value of one of them that cannot be mapped is that row's
        // problem, reported at its line (the referral converts without it unless the element is required).
        let mut joined: Vec<(&'static str, Position)> = Vec::new();
        joined.extend(related.first().map(|r| ("student", r.position.clone())));
        if let Some((_, at)) = &staff {
            joined.push(("staff", Position::line(self.roster_users(), *at)));
        }
        let school_line = student
            .and_then(|s| s.at(&["school", "sourcedId"]))
            .and_then(|id| id.as_str())
            .and_then(|id| self.roster.org(id))
            .map(|org| org.line);
        joined.extend(school_line.map(|l| ("school", Position::line("orgs.csv", l))));
        let context = object([
            ("referral", Value::Object(values)),
            ("student", from_student("user")),
            ("school", from_student("school")),
            ("staff", values_or_null(staff.map(|(values, _)| values))),
        ]);
        Ok(SourceRecord {
            kind: "referral",
            key,
            group,
            position,
            context,
            related,
            joined,
        })
    }
}

impl ReferralSource<'_> {
    /// The referring staff member's roster row. A referrer who is not staff in the roster (a student, a
    /// guardian) is never made a Practitioner: the link is left out and reported; an id the roster does not
    /// hold, or a name that contradicts the roster, is reported.
    fn roster_users(&self) -> &'static str {
        roster_tables::USERS.file
    }

    /// The referring staff member's roster values and their users.csv line.
    fn staff(
        &self,
        values: &mut serde_json::Map<String, serde_json::Value>,
        line: u64,
    ) -> Option<(serde_json::Map<String, serde_json::Value>, u64)> {
        let id = values.get("referring_staff_id")?.as_str()?.to_owned();
        let file = self.table.file();
        let row = match self.roster.staff(&id) {
            StaffLookup::Staff(row) => row,
            StaffLookup::NoRole(row) => {
                self.quirks.note(
                    format!("{file}: referring_staff_id naming a roster user with no role (read as staff)"),
                    Some(line),
                );
                row
            }
            StaffLookup::NotStaff(what) => {
                values.remove("referring_staff_id");
                self.quirks.note(
                    format!("{file}: referring_staff_id naming {what} in the roster, not staff (requester left out; expected a staff member's sourcedId)"),
                    Some(line),
                );
                return None;
            }
            StaffLookup::NotInRoster => {
                self.quirks.note(
                    format!("{file}: referring_staff_id not in the roster (Practitioner from referring_staff_name only)"),
                    Some(line),
                );
                return None;
            }
        };
        let written = values
            .get("referring_staff_name")
            .and_then(|v| v.as_str())
            .map(str::to_lowercase);
        let family = row.get("familyName").map(str::to_lowercase);
        if let (Some(written), Some(family)) = (written, family)
            && !written.contains(&family)
        {
            self.quirks.note(
                format!("{file}: referring_staff_name that does not hold the roster's family name for referring_staff_id (the Practitioner is the roster's; the name as written stays the referral's requester display)"),
                Some(line),
            );
        }
        Some((row.values, row.line))
    }
}

fn missing(position: &Position, field: &str, expected: &str) -> RecordError {
    RecordError::new(
        position.clone().with_field(field),
        format!("empty {field} (expected {expected})"),
    )
}

fn referral_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(REFERRALS.file)
    } else {
        path.to_owned()
    }
}

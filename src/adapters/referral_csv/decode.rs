//! Decoding referral rows and joining each to its student in the roster.

use crate::adapters::csv_table::{CsvTable, TableError, TableSpec, TextEncoding};
use crate::adapters::oneroster::OneRosterSource;
use crate::adapters::oneroster::tables as roster_tables;
use crate::adapters::{ContextTable, Decoded, Position, QuirkLog, RecordError, SourceRecord};
use serde_json::json;
use std::collections::HashMap;
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

    /// One record per referral row, or the reason the row cannot be used.
    pub fn records(&self) -> Result<impl Iterator<Item = Decoded> + '_, TableError> {
        let mut seen: HashMap<String, u64> = HashMap::new();
        Ok(self.table.rows()?.map(move |item| {
            let (_, row) = item?;
            let position = Position::line(self.table.file(), row.line);
            let id = row.get("referral_id").ok_or_else(|| missing(&position, "referral_id", "the referral's id in the sending system"))?;
            if let Some(first) = seen.insert(id.to_owned(), row.line) {
                return Err(RecordError::new(
                    position.with_field("referral_id"),
                    format!("duplicate referral_id '{id}' (first seen on line {first}); expected each referral once"),
                ));
            }
            let student_id = row.get("student_id").ok_or_else(|| missing(&position, "student_id", "the student's sourcedId in the roster"))?;
            let related = self.roster.student(student_id).map_err(|why| {
                RecordError::new(
                    position.clone().with_field("student_id"),
                    format!("{why}; expected the sourcedId of a student in the roster"),
                )
            })?;
            let student = related.first().map(|r| r.context.clone()).unwrap_or_default();
            let staff = row.get("referring_staff_id").and_then(|s| self.roster.user(s)).map(|r| r.values);
            Ok(SourceRecord {
                kind: "referral",
                key: id.to_owned(),
                group: id.to_owned(),
                position,
                context: json!({
                    "referral": row.values,
                    "student": student["user"],
                    "school": student["school"],
                    "staff": staff,
                }),
                related,
            })
        }))
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

//! A generator of OneRoster, referral-CSV and HMIS exports with injected faults (issue 12, item 7), for
//! `tests/fault_injection.rs`. Every export is made from a seed (xorshift64*, no dependency), so a failure
//! reproduces from the seed alone. While it writes an export the generator keeps a ledger of every fault it
//! injected (file, line, kind, and how onedoor must report it) and the truth the output is checked against:
//! which person each source key belongs to (the first row of a duplicated key), who may be whose guardian,
//! which people, records and organizations must appear in the output and which must not.
//!
//! Every generated person carries a marker (`zq` and five digits) in their names and e-mail, every referral a
//! record tag (`rq` and five digits) in its notes, every organization a tag (`oq` and five digits) in its name,
//! so an output resource that mixes two people, or outputs what must be left out, is found by reading the
//! output text.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A small, seedable generator (xorshift64*): the same seed gives the same export on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// In `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() - 1)]
    }
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    OneRoster,
    Referral,
    Hmis,
}

/// The faults of issue 12 the generator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// The last field of a row opens a quote and never closes it.
    UnterminatedQuote,
    /// Two such rows in one file: the second row's quote closes the value the first opened (the generator
    /// relabels `UnterminatedQuote` so when a file gets two).
    UnterminatedQuoteTwiceInAFile,
    /// A row with more fields than the header.
    RowLongerThanHeader,
    /// A sourcedId / PersonalID / EnrollmentID / EventID / referral_id given twice (another person's row).
    DuplicateKey,
    /// An HMIS Event or Services row whose PersonalID is not the client of its EnrollmentID.
    NotTheEnrollmentsClient,
    /// An HMIS Exit row whose PersonalID is not the client of its EnrollmentID.
    ExitOfAnotherClient,
    /// A referring_staff_id naming a student.
    ReferrerIsStudent,
    /// A referring_staff_id naming a parent.
    ReferrerIsParent,
    /// A referring_staff_id that is not in the roster.
    ReferrerNotInRoster,
    /// An agent (guardian link) whose roles are not guardian, parent or relative (a teacher).
    GuardianWithoutGuardianRole,
    /// An agent (guardian link) who is a student.
    GuardianIsStudent,
    /// A deleted HMIS client with enrollments, exits, services and events.
    DeletedClientWithRecords,
    /// A deleted HMIS enrollment with an exit, services or events (its client stays).
    DeletedEnrollmentWithRecords,
    /// A deleted HMIS exit: its enrollment stays, open.
    DeletedExit,
    /// A `tobedeleted` guardian still linked to a student.
    TobedeletedGuardian,
    /// A `tobedeleted` school that students and an org still reference.
    TobedeletedSchoolReferenced,
    /// HMIS NameDataQuality 8, 9 or 99 (placeholder names).
    NamePlaceholder,
    /// HMIS DOBDataQuality 2 (approximate date of birth).
    ApproximateDob,
    /// A birth date in the future.
    BirthDateInFuture,
    /// A birth date in 1800.
    BirthDateIn1800,
    /// An exit before its entry.
    ExitBeforeEntry,
    /// An event (or service) dated outside its enrollment.
    EventOutsideEnrollment,
    /// An unknown ReferralResult.
    UnknownReferralResult,
    /// Another unknown code (org type, need category, agency, urgency, RecordType).
    UnknownCode,
    /// An unknown code in a OneRoster demographics.csv row (sex 'robot').
    UnknownDemographicsCode,
    /// An HMIS Event (4.20) value outside the HUD list (99).
    UnknownEventCode,
    /// An org whose parentSourcedId chain comes back to it.
    OrgPartOfCycle,
    /// A NUL or other control character in a field.
    ControlCharacter,
    /// A header that gives a column twice in different case (and a row holding two different values).
    HeaderTwiceInDifferentCase,
    /// sourcedIds holding `|` (students `a|b` and `a`, guardians `c` and `b|c`).
    PipeInSourcedId,
    /// A roster row that cannot be used, in a referral run.
    UnusableRosterRow,
    /// A referring_staff_name that does not hold the roster's family name of referring_staff_id.
    ReferrerNameContradictsRoster,
    /// A target_agency written in another case (`County-Food-Bank`): the same Organization.
    AgencyInAnotherCase,
    /// A second HMIS Exit row for an enrollment (the first kept).
    SecondExit,
    /// An HMIS Export.csv with an empty HashStatus: names are not output.
    EmptyHashStatus,
}

/// How onedoor must report an injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// In `rejected`, at the file and one of the lines, the message holding one of these texts.
    Rejected(&'static [&'static str]),
    /// In `skipped`, at the file and one of the lines, the reason holding this text.
    Skipped(&'static [&'static str]),
    /// A quirk whose message holds one of these texts (and the file name), counted once per injected
    /// occurrence at least, whose first line is one of the injected lines.
    Quirk(&'static [&'static str]),
    /// A quirk whose message holds this text and names `<file> line <line>` (roster problems in a referral run).
    QuirkNamingLine(&'static str, &'static str),
    /// A rejection or a quirk (first line) at the file and one of the lines.
    RejectedOrQuirk(&'static [&'static str]),
    /// A quirk about the whole file (no line), holding one of these texts.
    FileQuirk(&'static [&'static str]),
    /// Output checks only (see [`Truth`]): nothing is reported.
    Output,
}

/// One injected fault, as the test checks it.
#[derive(Debug, Clone)]
pub struct Injected {
    pub fault: Fault,
    pub file: String,
    /// The lines at which the report may locate it (the first is where the fault is).
    pub lines: Vec<u64>,
    pub expect: Expect,
    /// What was done, for failure messages (no personal data: generated values only).
    pub what: String,
}

/// What the output must say, whatever was injected.
#[derive(Debug, Default, Clone)]
pub struct Truth {
    /// Source key (sourcedId, PersonalID, EnrollmentID, EventID, referral_id...) → the person marker of the row
    /// that must win (the first).
    pub owners: BTreeMap<String, String>,
    /// Person marker → what they are (`student`, `guardian`, `staff`, `client`).
    pub roles: BTreeMap<String, &'static str>,
    /// (guardian marker, student marker) pairs that may become a RelatedPerson.
    pub guardian_of: BTreeSet<(String, String)>,
    /// Markers (people, records, orgs) that must appear somewhere in the output.
    pub must_appear: BTreeSet<String>,
    /// Markers that must appear nowhere in the output.
    pub must_not_appear: BTreeSet<String>,
    /// Source keys that must be some output resource's identifier.
    pub keys_present: BTreeSet<String>,
    /// Source keys that must be no output resource's identifier.
    pub keys_absent: BTreeSet<String>,
    /// Patients (by source key) whose birthDate may only be a year (approximate DOB).
    pub year_only_birth: BTreeSet<String>,
    /// Encounters (by EnrollmentID) that must be open: not finished, no period end.
    pub open_encounters: BTreeSet<String>,
    /// Encounters (by EnrollmentID) that must end on this date (their exit's ExitDate).
    pub encounter_end: BTreeMap<String, String>,
    /// (guardian key, student key) links that must each be a RelatedPerson of their own (ids that hold `|`).
    pub links_present: Vec<(String, String)>,
    /// Latest plausible birth date (`YYYY-MM-DD`).
    pub birth_not_after: String,
    /// Marker or key → the faults injected on it, to tell a known gap from a new failure.
    pub faults_on: BTreeMap<String, BTreeSet<Fault>>,
    /// Marker or key → the file and line of the first row holding it.
    pub located: BTreeMap<String, (String, u64)>,
    /// Marker or key → every row holding it.
    pub locations: BTreeMap<String, Vec<(String, u64)>>,
    /// (file, line) → the markers and source keys its row holds (its own key and those it names).
    pub row_names: BTreeMap<(String, u64), BTreeSet<String>>,
}

/// A generated export: its folder, the ledger and the truth.
pub struct Generated {
    pub format: Format,
    pub seed: u64,
    /// The folder `convert --input` reads (for referrals: the folder holding `referrals.csv` and `roster/`).
    pub dir: PathBuf,
    pub ledger: Vec<Injected>,
    /// (file, line) rows that may be rejected or skipped as a consequence of an injected fault.
    pub tolerated: BTreeSet<(String, u64)>,
    /// (file, line) rows that may be skipped (not rejected): users who are not students.
    pub skippable: BTreeSet<(String, u64)>,
    /// Data rows written per file.
    pub rows: BTreeMap<String, u64>,
    pub truth: Truth,
}

impl Generated {
    /// The faults injected, by kind.
    pub fn kinds(&self) -> BTreeSet<Fault> {
        self.ledger.iter().map(|i| i.fault).collect()
    }
}

// ---------------------------------------------------------------------------------------------------------
// Tables

struct Row {
    id: usize,
    fields: Vec<String>,
    /// Written instead of the last field, unescaped (an unterminated quote).
    raw_last: Option<String>,
}

struct Table {
    file: &'static str,
    header: Vec<String>,
    rows: Vec<Row>,
}

impl Table {
    fn new(file: &'static str, header: &str) -> Self {
        Table {
            file,
            header: header.split(',').map(str::to_owned).collect(),
            rows: Vec::new(),
        }
    }
    fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{}: no column {name}", self.file))
    }
    fn row_mut(&mut self, id: usize) -> &mut Row {
        self.rows.iter_mut().find(|r| r.id == id).expect("row")
    }
    fn get(&self, id: usize, column: &str) -> String {
        let c = self.col(column);
        self.rows.iter().find(|r| r.id == id).expect("row").fields[c].clone()
    }
    fn set(&mut self, id: usize, column: &str, value: impl Into<String>) {
        let c = self.col(column);
        self.row_mut(id).fields[c] = value.into();
    }
    fn line_of(&self, id: usize) -> u64 {
        if id == HEADER {
            return 1;
        }
        self.rows.iter().position(|r| r.id == id).expect("row") as u64 + 2
    }
    /// Insert a column after `after`, every row holding `fill(row id)`.
    fn insert_column(&mut self, after: &str, name: &str, fill: impl Fn(&Row, usize) -> String) {
        let at = self.col(after) + 1;
        self.header.insert(at, name.to_owned());
        for row in &mut self.rows {
            let value = fill(row, at - 1);
            row.fields.insert(at, value);
        }
    }
    fn write(&self, dir: &Path) -> u64 {
        let mut out = String::new();
        out.push_str(&self.header.join(","));
        out.push('\n');
        for row in &self.rows {
            let n = row.fields.len();
            for (i, field) in row.fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if i == n - 1
                    && let Some(raw) = &row.raw_last
                {
                    out.push_str(raw);
                } else {
                    out.push_str(&escape(field));
                }
            }
            out.push('\n');
        }
        std::fs::write(dir.join(self.file), out).expect("write table");
        self.rows.len() as u64
    }
}

fn escape(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// The row id of a table's header (line 1).
const HEADER: usize = usize::MAX;

/// Where a fault is, before lines are known.
#[derive(Clone)]
struct At {
    table: usize,
    row: usize,
}

struct Pending {
    fault: Fault,
    at: Vec<At>,
    expect: Expect,
    what: String,
}

/// The tables of one export under construction, with their ledger.
#[derive(Default)]
struct Builder {
    tables: Vec<Table>,
    next_row: usize,
    next_marker: usize,
    ledger: Vec<Pending>,
    tolerated: Vec<At>,
    skippable: Vec<At>,
    truth: Truth,
    /// Rows a fault changed or depends on: no other fault takes them.
    used_rows: BTreeSet<usize>,
}

impl Builder {
    fn table(&mut self, file: &'static str, header: &str) -> usize {
        self.tables.push(Table::new(file, header));
        self.tables.len() - 1
    }
    fn marker(&mut self, prefix: &str) -> String {
        self.next_marker += 1;
        format!("{prefix}{:05}", self.next_marker)
    }
    /// Append a row given as `column=value` pairs (other columns empty).
    fn push(&mut self, table: usize, values: &[(&str, String)]) -> usize {
        self.insert(table, None, values)
    }
    fn insert(&mut self, table: usize, at: Option<usize>, values: &[(&str, String)]) -> usize {
        let t = &mut self.tables[table];
        let mut fields = vec![String::new(); t.header.len()];
        for (column, value) in values {
            fields[t.col(column)] = value.clone();
        }
        self.next_row += 1;
        let row = Row {
            id: self.next_row,
            fields,
            raw_last: None,
        };
        match at {
            Some(index) => t.rows.insert(index.min(t.rows.len()), row),
            None => t.rows.push(row),
        }
        self.next_row
    }
    fn fault(&mut self, fault: Fault, at: Vec<At>, expect: Expect, what: impl Into<String>) {
        self.ledger.push(Pending {
            fault,
            at,
            expect,
            what: what.into(),
        });
    }
    fn on(&mut self, key: &str, fault: Fault) {
        self.truth
            .faults_on
            .entry(key.to_owned())
            .or_default()
            .insert(fault);
    }
    fn tolerate(&mut self, table: usize, row: usize) {
        self.tolerated.push(At { table, row });
    }
    /// A row that is skipped, not rejected (a user who is not a student).
    fn tolerate_skip(&mut self, table: usize, row: usize) {
        self.skippable.push(At { table, row });
    }
    fn finish(mut self, format: Format, seed: u64, dir: PathBuf) -> Generated {
        // Two unterminated quotes in one file are another fault than one.
        let mut quotes: BTreeMap<usize, usize> = BTreeMap::new();
        for p in &self.ledger {
            if p.fault == Fault::UnterminatedQuote {
                *quotes.entry(p.at[0].table).or_default() += 1;
            }
        }
        let twice: BTreeSet<usize> = quotes
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(t, _)| t)
            .collect();
        let mut relabelled = BTreeSet::new();
        for p in &mut self.ledger {
            if p.fault == Fault::UnterminatedQuote && twice.contains(&p.at[0].table) {
                p.fault = Fault::UnterminatedQuoteTwiceInAFile;
                relabelled.insert(p.at[0].row);
            }
        }
        if !relabelled.is_empty() {
            let rows: BTreeSet<String> = self
                .tables
                .iter()
                .flat_map(|t| t.rows.iter())
                .filter(|r| relabelled.contains(&r.id))
                .flat_map(|r| {
                    let mut names = BTreeSet::new();
                    for field in &r.fields {
                        markers_in(field, &mut names);
                    }
                    names.insert(r.fields[0].clone());
                    names
                })
                .collect();
            for (name, faults) in self.truth.faults_on.iter_mut() {
                if rows.contains(name) && faults.remove(&Fault::UnterminatedQuote) {
                    faults.insert(Fault::UnterminatedQuoteTwiceInAFile);
                }
            }
        }
        std::fs::create_dir_all(&dir).expect("export folder");
        let mut rows = BTreeMap::new();
        for table in &self.tables {
            rows.insert(table.file.to_owned(), table.write(&dir));
        }
        let resolve = |at: &At| {
            let t = &self.tables[at.table];
            (t.file.to_owned(), t.line_of(at.row))
        };
        let ledger = self
            .ledger
            .iter()
            .map(|p| {
                let located: Vec<(String, u64)> = p.at.iter().map(resolve).collect();
                Injected {
                    fault: p.fault,
                    file: located[0].0.clone(),
                    lines: located
                        .iter()
                        .filter(|(f, _)| *f == located[0].0)
                        .map(|(_, l)| *l)
                        .collect(),
                    expect: p.expect.clone(),
                    what: p.what.clone(),
                }
            })
            .collect();
        let tolerated = self.tolerated.iter().map(resolve).collect();
        let skippable = self.skippable.iter().map(resolve).collect();
        let mut truth = self.truth;
        for table in &self.tables {
            for (index, row) in table.rows.iter().enumerate() {
                let at = (table.file.to_owned(), index as u64 + 2);
                let mut names = BTreeSet::new();
                for field in &row.fields {
                    markers_in(field, &mut names);
                    if truth.owners.contains_key(field) {
                        names.insert(field.clone());
                    }
                }
                names.insert(row.fields[0].clone());
                for name in &names {
                    truth
                        .located
                        .entry(name.clone())
                        .or_insert_with(|| at.clone());
                    truth
                        .locations
                        .entry(name.clone())
                        .or_default()
                        .push(at.clone());
                }
                truth.row_names.insert(at, names);
            }
        }
        Generated {
            format,
            seed,
            dir,
            ledger,
            tolerated,
            skippable,
            rows,
            truth,
        }
    }
}

fn date(year: i32, day_of_year: u32) -> String {
    let d = chrono::NaiveDate::from_yo_opt(year, day_of_year.clamp(1, 365)).expect("date");
    d.format("%Y-%m-%d").to_string()
}

fn plus_days(day: &str, days: i64) -> String {
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").expect("date");
    (d + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

const GIVEN: &[&str] = &["Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana"];
const FAMILY: &[&str] = &["Lind", "Osei", "Novak", "Ruiz", "Cole", "Park"];

// ---------------------------------------------------------------------------------------------------------
// OneRoster

const USERS: &str = "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns";
const ORGS: &str = "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId";
const ROLES: &str = "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId";
const DEMOGRAPHICS: &str = "sourcedId,status,dateLastModified,birthDate,sex";

/// The OneRoster faults.
pub const ONEROSTER_FAULTS: &[Fault] = &[
    Fault::UnterminatedQuote,
    Fault::RowLongerThanHeader,
    Fault::DuplicateKey,
    Fault::GuardianWithoutGuardianRole,
    Fault::GuardianIsStudent,
    Fault::TobedeletedGuardian,
    Fault::TobedeletedSchoolReferenced,
    Fault::BirthDateInFuture,
    Fault::BirthDateIn1800,
    Fault::UnknownCode,
    Fault::UnknownDemographicsCode,
    Fault::OrgPartOfCycle,
    Fault::ControlCharacter,
    Fault::HeaderTwiceInDifferentCase,
    Fault::PipeInSourcedId,
];

/// The referral-CSV faults.
pub const REFERRAL_FAULTS: &[Fault] = &[
    Fault::UnterminatedQuote,
    Fault::RowLongerThanHeader,
    Fault::DuplicateKey,
    Fault::ReferrerIsStudent,
    Fault::ReferrerIsParent,
    Fault::ReferrerNotInRoster,
    Fault::UnknownCode,
    Fault::ControlCharacter,
    Fault::HeaderTwiceInDifferentCase,
    Fault::UnusableRosterRow,
    Fault::ReferrerNameContradictsRoster,
    Fault::AgencyInAnotherCase,
];

/// The HMIS faults.
pub const HMIS_FAULTS: &[Fault] = &[
    Fault::SecondExit,
    Fault::EmptyHashStatus,
    Fault::UnterminatedQuote,
    Fault::RowLongerThanHeader,
    Fault::DuplicateKey,
    Fault::NotTheEnrollmentsClient,
    Fault::ExitOfAnotherClient,
    Fault::DeletedClientWithRecords,
    Fault::DeletedEnrollmentWithRecords,
    Fault::DeletedExit,
    Fault::NamePlaceholder,
    Fault::ApproximateDob,
    Fault::BirthDateInFuture,
    Fault::BirthDateIn1800,
    Fault::ExitBeforeEntry,
    Fault::EventOutsideEnrollment,
    Fault::UnknownReferralResult,
    Fault::UnknownCode,
    Fault::UnknownEventCode,
    Fault::ControlCharacter,
    Fault::HeaderTwiceInDifferentCase,
];

/// The faults of one export: `index`'s turn of the format's list (so every kind is in every run of as many
/// exports as the list is long) and a few more at random.
fn choose(rng: &mut Rng, kinds: &[Fault], index: usize) -> Vec<Fault> {
    let mut chosen = vec![kinds[index % kinds.len()]];
    for _ in 0..rng.range(3, 7) {
        chosen.push(*rng.pick(kinds));
    }
    chosen
}

struct Person {
    key: String,
    marker: String,
    row: usize,
    /// Its row in roles.csv / demographics.csv.
    role_row: usize,
    demo_row: Option<usize>,
    school: String,
    guardians: Vec<String>,
    /// Used by a fault already (a fault that destroys a row needs a person nothing else uses).
    used: bool,
}

struct Roster {
    b: Builder,
    users: usize,
    orgs: usize,
    roles: usize,
    demographics: usize,
    students: Vec<Person>,
    guardians: Vec<Person>,
    staff: Vec<Person>,
    schools: Vec<String>,
    next_org: usize,
}

impl Roster {
    fn add_org(&mut self, kind: &str, parent: &str, status: &str) -> (String, usize, String) {
        self.next_org += 1;
        let id = format!("s-{}", self.next_org);
        let tag = self.b.marker("oq");
        let row = self.b.push(
            self.orgs,
            &[
                ("sourcedId", id.clone()),
                ("status", status.into()),
                ("dateLastModified", "2026-08-01".into()),
                ("name", format!("Lakeview {kind} {tag}")),
                ("type", kind.into()),
                ("identifier", format!("06{:010}", self.next_org)),
                ("parentSourcedId", parent.into()),
            ],
        );
        (id, row, tag)
    }

    fn add_user(&mut self, key: &str, role: &'static str, school: &str, status: &str) -> Person {
        let marker = self.b.marker("zq");
        let given = format!("{}{marker}", GIVEN[self.b.next_marker % GIVEN.len()]);
        let family = format!("{}{marker}", FAMILY[self.b.next_marker % FAMILY.len()]);
        let row = self.b.push(
            self.users,
            &[
                ("sourcedId", key.into()),
                ("status", status.into()),
                ("dateLastModified", "2026-08-15".into()),
                ("enabledUser", "true".into()),
                ("givenName", given),
                ("familyName", family),
                ("email", format!("{marker}@example.org")),
                (
                    "primaryOrgSourcedId",
                    if role == "student" || role == "teacher" || role == "counselor" {
                        school.into()
                    } else {
                        String::new()
                    },
                ),
            ],
        );
        let role_row = self.b.push(
            self.roles,
            &[
                ("sourcedId", format!("r-{key}")),
                ("status", "active".into()),
                ("dateLastModified", "2026-08-15".into()),
                ("userSourcedId", key.into()),
                ("roleType", "primary".into()),
                ("role", role.into()),
                ("orgSourcedId", school.into()),
            ],
        );
        let kind = match role {
            "student" => "student",
            "parent" | "guardian" | "relative" => "guardian",
            _ => "staff",
        };
        self.b.truth.owners.insert(key.into(), marker.clone());
        self.b.truth.roles.insert(marker.clone(), kind);
        Person {
            key: key.into(),
            marker,
            row,
            role_row,
            demo_row: None,
            school: school.into(),
            guardians: Vec::new(),
            used: false,
        }
    }

    fn add_student(&mut self, rng: &mut Rng, key: &str, school: &str) -> Person {
        let mut student = self.add_user(key, "student", school, "active");
        let birth = date(rng.range(2010, 2018) as i32, rng.range(1, 360) as u32);
        let sex = *rng.pick(&["male", "female", "m", "f"]);
        student.demo_row = Some(self.b.push(
            self.demographics,
            &[
                ("sourcedId", key.into()),
                ("status", "active".into()),
                ("dateLastModified", "2026-08-15".into()),
                ("birthDate", birth),
                ("sex", sex.into()),
            ],
        ));
        student
    }

    /// Link guardian → student (in the student's agentSourcedIds, or the guardian's naming the student).
    fn link(&mut self, rng: &mut Rng, student: usize, guardian: &Person) {
        let s = &mut self.students[student];
        s.guardians.push(guardian.key.clone());
        if rng.chance(60) {
            let list = self.b.tables[self.users].get(s.row, "agentSourcedIds");
            let list = if list.is_empty() {
                guardian.key.clone()
            } else {
                format!("{list},{}", guardian.key)
            };
            self.b.tables[self.users].set(s.row, "agentSourcedIds", list);
        } else {
            self.b.tables[self.users].set(guardian.row, "agentSourcedIds", s.key.clone());
        }
        self.b
            .truth
            .guardian_of
            .insert((guardian.marker.clone(), s.marker.clone()));
    }

    /// A student nothing else names (no guardian, no fault yet), for faults that destroy its row.
    fn lonely_student(&mut self, rng: &mut Rng) -> Option<usize> {
        let free: Vec<usize> = (0..self.students.len())
            .filter(|&i| !self.students[i].used && self.students[i].guardians.is_empty())
            .collect();
        if free.is_empty() {
            return None;
        }
        let i = *rng.pick(&free);
        self.students[i].used = true;
        Some(i)
    }

    fn free_student(&mut self, rng: &mut Rng) -> Option<usize> {
        let free: Vec<usize> = (0..self.students.len())
            .filter(|&i| !self.students[i].used)
            .collect();
        if free.is_empty() {
            return None;
        }
        let i = *rng.pick(&free);
        self.students[i].used = true;
        Some(i)
    }

    /// The student's row is rejected: it, its roles and demographics rows may be reported, and it must not
    /// appear.
    fn lost_student(&mut self, i: usize, fault: Fault) {
        let (marker, role_row, demo_row) = (
            self.students[i].marker.clone(),
            self.students[i].role_row,
            self.students[i].demo_row,
        );
        self.b.truth.must_appear.remove(&marker);
        self.b.truth.must_not_appear.insert(marker.clone());
        self.b.on(&marker, fault);
        self.b.tolerate(self.roles, role_row);
        if let Some(d) = demo_row {
            self.b.tolerate(self.demographics, d);
        }
    }
}

fn roster(rng: &mut Rng, size: usize) -> Roster {
    let mut b = Builder::default();
    let users = b.table("users.csv", USERS);
    let orgs = b.table("orgs.csv", ORGS);
    let roles = b.table("roles.csv", ROLES);
    let demographics = b.table("demographics.csv", DEMOGRAPHICS);
    let mut r = Roster {
        b,
        users,
        orgs,
        roles,
        demographics,
        students: Vec::new(),
        guardians: Vec::new(),
        staff: Vec::new(),
        schools: Vec::new(),
        next_org: 0,
    };
    let (district, _, tag) = r.add_org("district", "", "active");
    r.b.truth.must_appear.insert(tag);
    for _ in 0..rng.range(2, 3) {
        let (school, _, tag) = r.add_org("school", &district, "active");
        r.b.truth.must_appear.insert(tag);
        r.schools.push(school);
    }
    for n in 0..size {
        let school = rng.pick(&r.schools).clone();
        let student = r.add_student(rng, &format!("st-{}", n + 1), &school);
        r.b.truth.must_appear.insert(student.marker.clone());
        r.students.push(student);
    }
    let mut g = 0;
    for i in 0..r.students.len() {
        if rng.chance(65) {
            g += 1;
            let role = *rng.pick(&["parent", "guardian", "relative"]);
            let school = r.students[i].school.clone();
            let guardian = r.add_user(&format!("pa-{g}"), role, &school, "active");
            r.link(rng, i, &guardian);
            r.b.truth.must_appear.insert(guardian.marker.clone());
            r.b.tolerate_skip(r.users, guardian.row);
            r.guardians.push(guardian);
        }
    }
    for n in 0..rng.range(3, 5) {
        let role = *rng.pick(&["teacher", "counselor", "administrator", "aide"]);
        let school = rng.pick(&r.schools).clone();
        let staff = r.add_user(&format!("tc-{}", n + 1), role, &school, "active");
        r.b.tolerate_skip(r.users, staff.row);
        r.staff.push(staff);
    }
    r
}

/// Generate a OneRoster export with faults into `dir`.
pub fn oneroster(seed: u64, index: usize, dir: &Path) -> Generated {
    let mut rng = Rng::new(seed);
    let size = rng.range(15, 40);
    let mut r = roster(&mut rng, size);
    let mut header_twice = false;
    for fault in choose(&mut rng, ONEROSTER_FAULTS, index) {
        inject_oneroster(&mut rng, &mut r, fault, &mut header_twice);
    }
    // A last staff row, so that no destroyed row is the file's last.
    let school = r.schools[0].clone();
    let staff = r.add_user("tc-last", "teacher", &school, "active");
    r.b.tolerate_skip(r.users, staff.row);
    let birth_not_after = "2026-09-01".to_owned();
    let mut g = r.b.finish(Format::OneRoster, seed, dir.to_owned());
    g.truth.birth_not_after = birth_not_after;
    g
}

fn inject_oneroster(rng: &mut Rng, r: &mut Roster, fault: Fault, header_twice: &mut bool) {
    let users = r.users;
    match fault {
        Fault::UnterminatedQuote => {
            let Some(i) = r.lonely_student(rng) else {
                return;
            };
            let row = r.students[i].row;
            r.b.tables[users].row_mut(row).raw_last = Some("\"she/her".into());
            r.lost_student(i, fault);
            r.b.fault(
                fault,
                vec![At { table: users, row }],
                Expect::Rejected(&["never closed", "malformed CSV"]),
                "users.csv: pronouns opens a quote that is never closed",
            );
        }
        Fault::RowLongerThanHeader => {
            let Some(i) = r.lonely_student(rng) else {
                return;
            };
            let row = r.students[i].row;
            r.b.tables[users].row_mut(row).fields.push("extra".into());
            r.b.tables[users].row_mut(row).fields.push("more".into());
            r.lost_student(i, fault);
            r.b.fault(
                fault,
                vec![At { table: users, row }],
                Expect::Rejected(&["fields but the header has"]),
                "users.csv: two fields more than the header",
            );
        }
        Fault::DuplicateKey => {
            let Some(i) = r.free_student(rng) else { return };
            let key = r.students[i].key.clone();
            let position = r.b.tables[users]
                .rows
                .iter()
                .position(|x| x.id == r.students[i].row)
                .expect("row");
            let at = rng.range(position + 1, r.b.tables[users].rows.len());
            let marker = r.b.marker("zq");
            let row = r.b.insert(
                users,
                Some(at),
                &[
                    ("sourcedId", key.clone()),
                    ("status", "active".into()),
                    ("dateLastModified", "2026-08-15".into()),
                    ("enabledUser", "true".into()),
                    ("givenName", format!("Dup{marker}")),
                    ("familyName", format!("Other{marker}")),
                    ("email", format!("{marker}@example.org")),
                    ("primaryOrgSourcedId", r.students[i].school.clone()),
                ],
            );
            r.b.truth.must_not_appear.insert(marker.clone());
            r.b.truth.roles.insert(marker.clone(), "student");
            r.b.on(&marker, fault);
            r.b.on(&r.students[i].marker.clone(), fault);
            r.b.fault(
                fault,
                vec![At { table: users, row }],
                Expect::Rejected(&["duplicate sourcedId"]),
                format!("users.csv: sourcedId '{key}' again, another person"),
            );
        }
        Fault::GuardianWithoutGuardianRole => {
            let Some(i) = r.lonely_student(rng) else {
                return;
            };
            let school = r.students[i].school.clone();
            let n = r.staff.len() + 1;
            let teacher = r.add_user(&format!("tc-{n}"), "teacher", &school, "active");
            let (student_row, teacher_row) = (r.students[i].row, teacher.row);
            // The link in the student's row, or in the teacher's (naming the student).
            let reverse = rng.chance(50);
            if reverse {
                let key = r.students[i].key.clone();
                r.b.tables[users].set(teacher_row, "agentSourcedIds", key);
            } else {
                r.b.tables[users].set(student_row, "agentSourcedIds", teacher.key.clone());
            }
            r.b.tolerate_skip(users, teacher_row);
            let (sm, tm) = (r.students[i].marker.clone(), teacher.marker.clone());
            r.b.on(&sm, fault);
            r.b.on(&tm, fault);
            r.b.fault(
                fault,
                vec![
                    At {
                        table: users,
                        row: student_row,
                    },
                    At {
                        table: users,
                        row: teacher_row,
                    },
                ],
                // Each direction is its own quirk (grouped apart by their texts).
                Expect::Quirk(if reverse {
                    &["agentSourcedIds of", "guardian"]
                } else {
                    &["agent", "guardian"]
                }),
                if reverse {
                    format!(
                        "users.csv: teacher {} names student {} in agentSourcedIds",
                        teacher.key, r.students[i].key
                    )
                } else {
                    format!(
                        "users.csv: student {} names teacher {} as agent",
                        r.students[i].key, teacher.key
                    )
                },
            );
            r.staff.push(teacher);
        }
        Fault::GuardianIsStudent => {
            let Some(i) = r.lonely_student(rng) else {
                return;
            };
            // A student no fault takes out of the export.
            let Some(j) = r.free_student(rng) else { return };
            let (row, other) = (r.students[i].row, r.students[j].key.clone());
            r.b.tables[users].set(row, "agentSourcedIds", other.clone());
            let (sm, om) = (r.students[i].marker.clone(), r.students[j].marker.clone());
            r.b.on(&sm, fault);
            r.b.on(&om, fault);
            r.b.fault(
                fault,
                vec![At { table: users, row }],
                Expect::Quirk(&["naming a student"]),
                format!(
                    "users.csv: student {} names student {other} as agent",
                    r.students[i].key
                ),
            );
        }
        Fault::TobedeletedGuardian => {
            let candidates: Vec<usize> = (0..r.guardians.len())
                .filter(|&g| !r.guardians[g].used)
                .collect();
            if candidates.is_empty() {
                return;
            }
            let g = *rng.pick(&candidates);
            r.guardians[g].used = true;
            let (row, key, marker) = (
                r.guardians[g].row,
                r.guardians[g].key.clone(),
                r.guardians[g].marker.clone(),
            );
            r.b.tables[users].set(row, "status", "tobedeleted");
            let Some(s) = r.students.iter().position(|s| s.guardians.contains(&key)) else {
                return;
            };
            let (srow, sm) = (r.students[s].row, r.students[s].marker.clone());
            r.b.truth.guardian_of.remove(&(marker.clone(), sm.clone()));
            r.b.truth.must_appear.remove(&marker);
            r.b.truth.must_not_appear.insert(marker.clone());
            r.b.on(&marker, fault);
            r.b.on(&sm, fault);
            r.b.fault(
                fault,
                vec![At { table: users, row }],
                Expect::Skipped(&["tobedeleted", "not a student"]),
                format!("users.csv: guardian {key} has status tobedeleted"),
            );
            r.b.fault(
                fault,
                vec![
                    At {
                        table: users,
                        row: srow,
                    },
                    At { table: users, row },
                ],
                Expect::Quirk(&["guardian with status 'tobedeleted'"]),
                format!("users.csv: the link to tobedeleted guardian {key}"),
            );
        }
        Fault::TobedeletedSchoolReferenced => {
            let district = "s-1".to_owned();
            let (school, row, tag) = r.add_org("school", &district, "tobedeleted");
            r.b.truth.must_not_appear.insert(tag.clone());
            r.b.on(&tag, fault);
            r.b.fault(
                fault,
                vec![At { table: r.orgs, row }],
                Expect::Skipped(&["tobedeleted"]),
                format!("orgs.csv: school {school} has status tobedeleted"),
            );
            let (_, child, child_tag) = r.add_org("department", &school, "active");
            r.b.truth.must_appear.insert(child_tag);
            r.b.fault(
                fault,
                vec![At {
                    table: r.orgs,
                    row: child,
                }],
                Expect::Quirk(&["naming an org with status 'tobedeleted'"]),
                format!("orgs.csv: an org partOf tobedeleted school {school}"),
            );
            let mut at = Vec::new();
            for _ in 0..rng.range(1, 2) {
                let Some(i) = r.free_student(rng) else { break };
                let (srow, role_row) = (r.students[i].row, r.students[i].role_row);
                r.b.tables[users].set(srow, "primaryOrgSourcedId", school.clone());
                let roles = r.roles;
                r.b.tables[roles].set(role_row, "orgSourcedId", school.clone());
                let sm = r.students[i].marker.clone();
                r.b.on(&sm, fault);
                at.push(At {
                    table: users,
                    row: srow,
                });
            }
            if !at.is_empty() {
                r.b.fault(
                    fault,
                    at,
                    Expect::Quirk(&["student's school has status 'tobedeleted'"]),
                    format!("users.csv: students of tobedeleted school {school}"),
                );
            }
        }
        Fault::BirthDateInFuture
        | Fault::BirthDateIn1800
        | Fault::UnknownCode
        | Fault::UnknownDemographicsCode => {
            if fault == Fault::UnknownCode {
                let (_, row, tag) = r.add_org("galaxy", "s-1", "active");
                r.b.truth.must_not_appear.insert(tag.clone());
                r.b.on(&tag, fault);
                r.b.fault(
                    fault,
                    vec![At { table: r.orgs, row }],
                    Expect::Rejected(&["unknown code 'galaxy'"]),
                    "orgs.csv: org type 'galaxy'",
                );
                return;
            }
            let Some(i) = r.free_student(rng) else { return };
            let demo = r.students[i].demo_row.expect("demographics");
            let table = r.demographics;
            let what = match fault {
                Fault::BirthDateInFuture => {
                    r.b.tables[table].set(demo, "birthDate", "2090-05-01");
                    "birthDate 2090-05-01"
                }
                Fault::BirthDateIn1800 => {
                    r.b.tables[table].set(demo, "birthDate", "1800-01-01");
                    "birthDate 1800-01-01"
                }
                _ => {
                    r.b.tables[table].set(demo, "sex", "robot");
                    "sex 'robot'"
                }
            };
            let sm = r.students[i].marker.clone();
            r.b.on(&sm, fault);
            r.b.fault(
                fault,
                vec![At { table, row: demo }],
                Expect::RejectedOrQuirk(&["birth", "DOB", "unknown code", "sex"]),
                format!("demographics.csv: {what}"),
            );
        }
        Fault::OrgPartOfCycle => {
            let a = format!("s-{}", r.next_org + 1);
            let b_id = format!("s-{}", r.next_org + 2);
            let (_, row_a, tag_a) = r.add_org("department", &b_id, "active");
            let (_, row_b, tag_b) = r.add_org("department", &a, "active");
            for tag in [&tag_a, &tag_b] {
                r.b.truth.must_not_appear.insert(tag.clone());
                r.b.on(tag, fault);
            }
            for row in [row_a, row_b] {
                r.b.fault(
                    fault,
                    vec![At { table: r.orgs, row }],
                    Expect::Rejected(&["cycle"]),
                    "orgs.csv: parentSourcedId cycle of two orgs",
                );
            }
        }
        Fault::ControlCharacter => {
            let Some(i) = r.lonely_student(rng) else {
                return;
            };
            let row = r.students[i].row;
            let c = *rng.pick(&["\u{0}", "\u{1}", "\u{7}", "\u{1b}"]);
            r.b.tables[users].set(row, "middleName", format!("Jo{c}an"));
            r.lost_student(i, fault);
            r.b.fault(
                fault,
                vec![At { table: users, row }],
                Expect::Rejected(&["control character"]),
                "users.csv: a control character in middleName",
            );
        }
        Fault::HeaderTwiceInDifferentCase => {
            if !*header_twice {
                *header_twice = true;
                let given = r.b.tables[users].col("givenName");
                r.b.tables[users].insert_column("familyName", "GivenName", |row, _| {
                    if row.id % 2 == 0 {
                        row.fields[given].clone()
                    } else {
                        String::new()
                    }
                });
                r.b.fault(
                    fault,
                    vec![At {
                        table: users,
                        row: HEADER,
                    }],
                    Expect::Quirk(&["repeats column"]),
                    "users.csv: header gives givenName and GivenName",
                );
            }
            let Some(i) = r.lonely_student(rng) else {
                return;
            };
            let row = r.students[i].row;
            let marker = r.students[i].marker.clone();
            r.b.tables[users].set(row, "GivenName", format!("Other{marker}"));
            r.lost_student(i, fault);
            r.b.fault(
                fault,
                vec![At { table: users, row }],
                Expect::Rejected(&["twice"]),
                "users.csv: givenName and GivenName differ",
            );
        }
        Fault::PipeInSourcedId => {
            let n = r.b.next_marker;
            let school = r.schools[0].clone();
            let (s1, s2) = (format!("a{n}|b{n}"), format!("a{n}"));
            let (g1, g2) = (format!("c{n}"), format!("b{n}|c{n}"));
            let mut student1 = r.add_student(rng, &s1, &school);
            let mut student2 = r.add_student(rng, &s2, &school);
            let mut guardian1 = r.add_user(&g1, "parent", &school, "active");
            let mut guardian2 = r.add_user(&g2, "guardian", &school, "active");
            guardian1.used = true;
            guardian2.used = true;
            student1.used = true;
            student2.used = true;
            r.b.tables[users].set(student1.row, "agentSourcedIds", g1.clone());
            r.b.tables[users].set(student2.row, "agentSourcedIds", g2.clone());
            student1.guardians.push(g1.clone());
            student2.guardians.push(g2.clone());
            for (g, s) in [(&guardian1, &student1), (&guardian2, &student2)] {
                r.b.truth
                    .guardian_of
                    .insert((g.marker.clone(), s.marker.clone()));
                r.b.truth.must_appear.insert(g.marker.clone());
                r.b.truth.must_appear.insert(s.marker.clone());
                r.b.tolerate_skip(users, g.row);
                r.b.on(&g.marker, fault);
                r.b.on(&s.marker, fault);
            }
            r.b.truth.links_present.push((g1.clone(), s1.clone()));
            r.b.truth.links_present.push((g2.clone(), s2.clone()));
            r.b.fault(
                fault,
                vec![At {
                    table: users,
                    row: student1.row,
                }],
                Expect::Output,
                format!(
                    "users.csv: students '{s1}' (guardian '{g1}') and '{s2}' (guardian '{g2}')"
                ),
            );
            r.students.push(student1);
            r.students.push(student2);
            r.guardians.push(guardian1);
            r.guardians.push(guardian2);
        }
        _ => unreachable!("not a OneRoster fault: {fault:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Referral CSV

const REFERRALS: &str = "referral_id,student_id,need_category,urgency,referred_on,referring_staff_id,referring_staff_name,target_agency,target_service,reason,notes,consent_reference";

/// Generate a referral export (`referrals.csv` and a clean roster in `roster/`) with faults into `dir`.
pub fn referral(seed: u64, index: usize, dir: &Path) -> Generated {
    let mut rng = Rng::new(seed);
    let size = rng.range(8, 15);
    let mut r = roster(&mut rng, size);
    let school = r.schools[0].clone();
    let counselor = r.add_user("cn-1", "counselor", &school, "active");
    r.b.tolerate_skip(r.users, counselor.row);
    r.staff.push(counselor);
    let last = r.add_user("tc-last", "teacher", &school, "active");
    r.b.tolerate_skip(r.users, last.row);
    // Every roster user is read by referrals, not converted: only what referrals name must appear.
    r.b.truth.must_appear.clear();
    // The referral file is a table of this builder too (written beside the roster folder).
    let mut b = std::mem::take(&mut r.b);
    let referrals = b.table("referrals.csv", REFERRALS);
    let chosen = choose(&mut rng, REFERRAL_FAULTS, index);
    let count = rng.range(40, 90);
    let mut rows: Vec<(usize, usize, String)> = Vec::new(); // (row, student index, record tag)
    let staff: Vec<usize> = (0..r.staff.len()).collect();
    for n in 0..count {
        let s = rng.range(0, r.students.len() - 1);
        let st = rng.pick(&staff);
        let tag = b.marker("rq");
        let (student, staffer) = (&r.students[s], &r.staff[*st]);
        let given = r.b_users_get(&b, staffer.row, "givenName");
        let family = r.b_users_get(&b, staffer.row, "familyName");
        let row = b.push(
            referrals,
            &[
                ("referral_id", format!("REF-{}", n + 1)),
                ("student_id", student.key.clone()),
                (
                    "need_category",
                    (*rng.pick(&["food-insecurity", "housing", "transportation", "utilities"]))
                        .into(),
                ),
                (
                    "urgency",
                    (*rng.pick(&["routine", "urgent", "asap", "stat", ""])).into(),
                ),
                ("referred_on", date(2026, rng.range(1, 200) as u32)),
                ("referring_staff_id", staffer.key.clone()),
                ("referring_staff_name", format!("{given} {family}")),
                (
                    "target_agency",
                    (*rng.pick(&["county-food-bank", "family-services", "youth-housing"])).into(),
                ),
                ("target_service", "Weekend food backpacks".into()),
                ("reason", format!("Needs support {}", student.marker)),
                ("notes", format!("Referral {tag} for {}", student.marker)),
                ("consent_reference", format!("CONS-{}", n + 1)),
            ],
        );
        b.truth
            .owners
            .insert(format!("REF-{}", n + 1), student.marker.clone());
        b.truth.must_appear.insert(tag.clone());
        b.truth.must_appear.insert(student.marker.clone());
        b.truth.keys_present.insert(format!("REF-{}", n + 1));
        rows.push((row, s, tag));
    }
    r.b = b;
    let mut used: BTreeSet<usize> = BTreeSet::new();
    let mut header_twice = false;
    let mut referral_faults = Vec::new();
    for fault in chosen {
        let free: Vec<usize> = (0..rows.len()).filter(|i| !used.contains(i)).collect();
        if free.len() < 2 {
            break;
        }
        let k = *rng.pick(&free[..free.len() - 1]);
        used.insert(k);
        referral_faults.push((fault, k));
    }
    for (fault, k) in referral_faults {
        inject_referral(
            &mut rng,
            &mut r,
            referrals,
            &rows,
            k,
            fault,
            &mut header_twice,
            &used,
        );
    }
    let mut g = r.b.finish(Format::Referral, seed, dir.to_owned());
    // The roster tables go into roster/.
    let roster_dir = dir.join("roster");
    std::fs::create_dir_all(&roster_dir).expect("roster folder");
    for file in ["users.csv", "orgs.csv", "roles.csv", "demographics.csv"] {
        std::fs::rename(dir.join(file), roster_dir.join(file)).expect("move roster table");
    }
    g.truth.birth_not_after = "2026-09-01".into();
    g
}

impl Roster {
    fn b_users_get(&self, b: &Builder, row: usize, column: &str) -> String {
        b.tables[self.users].get(row, column)
    }
}

#[allow(clippy::too_many_arguments)]
fn inject_referral(
    rng: &mut Rng,
    r: &mut Roster,
    referrals: usize,
    rows: &[(usize, usize, String)],
    k: usize,
    fault: Fault,
    header_twice: &mut bool,
    used: &BTreeSet<usize>,
) {
    let (row, s, tag) = (rows[k].0, rows[k].1, rows[k].2.clone());
    let id = r.b.tables[referrals].get(row, "referral_id");
    let at = vec![At {
        table: referrals,
        row,
    }];
    let lost = |r: &mut Roster| {
        r.b.truth.must_appear.remove(&tag);
        r.b.truth.must_not_appear.insert(tag.clone());
        r.b.truth.keys_present.remove(&id);
        r.b.truth.keys_absent.insert(id.clone());
        r.b.on(&tag, fault);
        r.b.on(&id, fault);
        // The student may then be named by no referral at all.
        let marker = r.students[s].marker.clone();
        let named_elsewhere = rows
            .iter()
            .any(|(_, other, t)| *other == s && r.b.truth.must_appear.contains(t));
        if !named_elsewhere {
            r.b.truth.must_appear.remove(&marker);
        }
    };
    match fault {
        Fault::UnterminatedQuote => {
            r.b.tables[referrals].row_mut(row).raw_last = Some("\"CONS-x".into());
            lost(r);
            r.b.fault(
                fault,
                at,
                Expect::Rejected(&["never closed", "malformed CSV"]),
                format!("referrals.csv: {id}: consent_reference opens a quote never closed"),
            );
        }
        Fault::RowLongerThanHeader => {
            let fields = &mut r.b.tables[referrals].row_mut(row).fields;
            fields.insert(10, "unquoted, comma".into());
            lost(r);
            r.b.fault(
                fault,
                at,
                Expect::Rejected(&["fields but the header has"]),
                format!("referrals.csv: {id}: one field more than the header"),
            );
        }
        Fault::DuplicateKey => {
            // The row takes the id of an earlier referral (of another student, maybe).
            let earlier: Vec<usize> = (0..k).filter(|e| !used.contains(e)).collect();
            if earlier.is_empty() {
                return;
            }
            let e = *rng.pick(&earlier);
            let first = r.b.tables[referrals].get(rows[e].0, "referral_id");
            r.b.tables[referrals].set(row, "referral_id", first.clone());
            r.b.truth.keys_present.remove(&id);
            lost(r);
            r.b.truth.keys_absent.remove(&first);
            r.b.truth.keys_present.insert(first.clone());
            r.b.fault(
                fault,
                at,
                Expect::Rejected(&["duplicate referral_id"]),
                format!("referrals.csv: referral_id '{first}' again"),
            );
        }
        Fault::ReferrerNameContradictsRoster => {
            // A staff member of the roster, written under another name.
            let (staff, marker) = (r.staff[0].key.clone(), r.staff[0].marker.clone());
            r.b.tables[referrals].set(row, "referring_staff_id", staff);
            r.b.tables[referrals].set(row, "referring_staff_name", "Someone Else");
            r.b.on(&tag, fault);
            r.b.on(&marker, fault);
            r.b.fault(
                fault,
                at,
                Expect::Quirk(&["referring_staff_name that does not hold"]),
                format!("referrals.csv: {id}: referring_staff_name 'Someone Else'"),
            );
        }
        Fault::AgencyInAnotherCase => {
            let agency = r.b.tables[referrals].get(row, "target_agency");
            let cased: String = agency
                .split('-')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default()
                })
                .collect::<Vec<String>>()
                .join("-");
            r.b.tables[referrals].set(row, "target_agency", cased.clone());
            r.b.on(&tag, fault);
            r.b.fault(
                fault,
                at,
                Expect::Output,
                format!("referrals.csv: {id}: target_agency '{cased}'"),
            );
        }
        Fault::ReferrerIsStudent | Fault::ReferrerIsParent | Fault::ReferrerNotInRoster => {
            let (key, name, expect): (String, String, &'static [&'static str]) = match fault {
                Fault::ReferrerIsStudent => {
                    let others: Vec<usize> = (0..r.students.len()).filter(|&o| o != s).collect();
                    let o = *rng.pick(&others);
                    let p = &r.students[o];
                    let name = format!(
                        "{} {}",
                        r.b_users_get(&r.b, p.row, "givenName"),
                        r.b_users_get(&r.b, p.row, "familyName")
                    );
                    (
                        p.key.clone(),
                        name,
                        &["referring_staff_id naming a student"],
                    )
                }
                Fault::ReferrerIsParent => {
                    if r.guardians.is_empty() {
                        return;
                    }
                    let p = rng.pick(&r.guardians);
                    let name = format!(
                        "{} {}",
                        r.b_users_get(&r.b, p.row, "givenName"),
                        r.b_users_get(&r.b, p.row, "familyName")
                    );
                    (
                        p.key.clone(),
                        name,
                        &["referring_staff_id naming a guardian, parent or relative"],
                    )
                }
                _ => {
                    let phantom = r.b.marker("zq");
                    r.b.truth.roles.insert(phantom.clone(), "staff");
                    (
                        format!("cn-404-{}", &phantom[2..]),
                        format!("Pat Nobody{phantom}"),
                        &["referring_staff_id not in the roster"],
                    )
                }
            };
            r.b.tables[referrals].set(row, "referring_staff_id", key);
            r.b.tables[referrals].set(row, "referring_staff_name", name);
            r.b.on(&tag, fault);
            r.b.fault(
                fault,
                at,
                Expect::Quirk(expect),
                format!("referrals.csv: {id}: referring_staff_id {fault:?}"),
            );
        }
        Fault::UnknownCode => {
            let (column, value) = *rng.pick(&[
                ("need_category", "astrology"),
                ("target_agency", "the-moon"),
                ("urgency", "whenever"),
            ]);
            r.b.tables[referrals].set(row, column, value);
            lost(r);
            r.b.fault(
                fault,
                at,
                Expect::Rejected(&["unknown code"]),
                format!("referrals.csv: {id}: {column} '{value}'"),
            );
        }
        Fault::ControlCharacter => {
            let reason = r.b.tables[referrals].get(row, "reason");
            r.b.tables[referrals].set(row, "reason", format!("{reason} \u{0}"));
            lost(r);
            r.b.fault(
                fault,
                at,
                Expect::Rejected(&["control character"]),
                format!("referrals.csv: {id}: NUL in reason"),
            );
        }
        Fault::HeaderTwiceInDifferentCase => {
            if !*header_twice {
                *header_twice = true;
                let notes = r.b.tables[referrals].col("notes");
                r.b.tables[referrals].insert_column("notes", "Notes", |row, _| {
                    if row.id % 2 == 0 {
                        row.fields[notes].clone()
                    } else {
                        String::new()
                    }
                });
                r.b.fault(
                    fault,
                    vec![At {
                        table: referrals,
                        row: HEADER,
                    }],
                    Expect::Quirk(&["repeats column"]),
                    "referrals.csv: header gives notes and Notes",
                );
            }
            r.b.tables[referrals].set(row, "Notes", "Something else");
            lost(r);
            r.b.fault(
                fault,
                at,
                Expect::Rejected(&["twice"]),
                format!("referrals.csv: {id}: notes and Notes differ"),
            );
        }
        Fault::UnusableRosterRow => {
            // A roster row duplicating a staff member's sourcedId (the first row is used).
            let users = r.users;
            let marker = r.b.marker("zq");
            let dup = r.b.push(
                users,
                &[
                    ("sourcedId", r.staff[0].key.clone()),
                    ("status", "active".into()),
                    ("givenName", format!("Dup{marker}")),
                    ("familyName", format!("Staff{marker}")),
                ],
            );
            // After the original row, and never the roster's last row.
            let position = r.b.tables[users].rows.len() - 1;
            let moved = r.b.tables[users].rows.remove(position);
            let original = r.b.tables[users]
                .rows
                .iter()
                .position(|x| x.id == r.staff[0].row)
                .expect("row");
            let at_index = rng.range(original + 1, r.b.tables[users].rows.len() - 1);
            r.b.tables[users].rows.insert(at_index, moved);
            r.b.truth.must_not_appear.insert(marker.clone());
            r.b.on(&marker, fault);
            r.b.tolerate(users, dup);
            r.b.fault(
                fault,
                vec![At {
                    table: users,
                    row: dup,
                }],
                Expect::QuirkNamingLine("roster: a row that cannot be used", "users.csv"),
                "roster users.csv: a duplicate sourcedId",
            );
        }
        _ => unreachable!("not a referral fault: {fault:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// HMIS

const CLIENT: &str = "PersonalID,FirstName,MiddleName,LastName,NameSuffix,NameDataQuality,SSN,SSNDataQuality,DOB,DOBDataQuality,AmIndAKNative,Asian,BlackAfAmerican,HispanicLatinaeo,MidEastNAfrican,NativeHIPacific,White,RaceNone,AdditionalRaceEthnicity,Woman,Man,NonBinary,CulturallySpecific,Transgender,Questioning,DifferentIdentity,GenderNone,DifferentIdentityText,VeteranStatus,YearEnteredService,YearSeparated,WorldWarII,KoreanWar,VietnamWar,DesertStorm,AfghanistanOEF,IraqOIF,IraqOND,OtherTheater,MilitaryBranch,DischargeStatus,DateCreated,DateUpdated,UserID,DateDeleted,ExportID";
const ENROLLMENT: &str = "EnrollmentID,PersonalID,ProjectID,EntryDate,HouseholdID,RelationshipToHoH,EnrollmentCoC,LivingSituation,ReferralSource,DateCreated,DateUpdated,UserID,DateDeleted,ExportID";
const EXIT: &str = "ExitID,EnrollmentID,PersonalID,ExitDate,Destination,DestinationSubsidyType,OtherDestination,DateCreated,DateUpdated,UserID,DateDeleted,ExportID";
const SERVICES: &str = "ServicesID,EnrollmentID,PersonalID,DateProvided,RecordType,TypeProvided,OtherTypeProvided,MovingOnOtherType,SubTypeProvided,FAAmount,FAStartDate,FAEndDate,ReferralOutcome,DateCreated,DateUpdated,UserID,DateDeleted,ExportID";
const EVENT: &str = "EventID,EnrollmentID,PersonalID,EventDate,Event,ProbSolDivRRResult,ReferralCaseManageAfter,LocationCrisisOrPHHousing,ReferralResult,ResultDate,DateCreated,DateUpdated,UserID,DateDeleted,ExportID";
const EXPORT: &str = "ExportID,SourceType,SourceID,SourceName,SourceContactFirst,SourceContactLast,SourceContactPhone,SourceContactExtension,SourceContactEmail,ExportDate,ExportStartDate,ExportEndDate,SoftwareName,SoftwareVersion,CSVVersion,ExportPeriodType,ExportDirective,HashStatus,ImplementationID";
const ORGANIZATION: &str = "OrganizationID,OrganizationName,VictimServiceProvider,OrganizationCommonName,DateCreated,DateUpdated,UserID,DateDeleted,ExportID";
const PROJECT: &str = "ProjectID,OrganizationID,ProjectName,ProjectCommonName,OperatingStartDate,OperatingEndDate,ContinuumProject,ProjectType,HousingType,RRHSubType,ResidentialAffiliation,TargetPopulation,HOPWAMedAssistedLivingFac,PITCount,DateCreated,DateUpdated,UserID,DateDeleted,ExportID";

struct Client {
    key: String,
    marker: String,
    row: usize,
    enrollments: Vec<usize>,
    /// A fault involves the client: no fault deletes or destroys it any more.
    used: bool,
    /// Deleted, or its row destroyed: nothing of it may be taken by another fault.
    gone: bool,
}

struct Enrollment {
    key: String,
    client: usize,
    row: usize,
    entry: String,
    exit: Option<(usize, String)>,
    services: Vec<usize>,
    events: Vec<usize>,
}

struct Hmis {
    b: Builder,
    export_t: usize,
    client_t: usize,
    enrollment_t: usize,
    exit_t: usize,
    services_t: usize,
    event_t: usize,
    clients: Vec<Client>,
    enrollments: Vec<Enrollment>,
    next_id: usize,
}

const STAMP: &str = "2024-01-01 10:00:00";

impl Hmis {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    fn add_client(&mut self, rng: &mut Rng) -> usize {
        let key = format!("{}", 1000 + self.clients.len() + 1);
        let marker = self.b.marker("zq");
        let woman = rng.chance(50);
        let row = self.b.push(
            self.client_t,
            &[
                ("PersonalID", key.clone()),
                (
                    "FirstName",
                    format!("{}{marker}", GIVEN[self.clients.len() % GIVEN.len()]),
                ),
                (
                    "LastName",
                    format!("{}{marker}", FAMILY[self.clients.len() % FAMILY.len()]),
                ),
                ("NameDataQuality", "1".into()),
                ("SSNDataQuality", "99".into()),
                (
                    "DOB",
                    date(rng.range(1950, 2015) as i32, rng.range(1, 360) as u32),
                ),
                ("DOBDataQuality", "1".into()),
                ("White", "1".into()),
                ("Woman", if woman { "1" } else { "0" }.into()),
                ("Man", if woman { "0" } else { "1" }.into()),
                ("VeteranStatus", "0".into()),
                ("DateCreated", STAMP.into()),
                ("DateUpdated", STAMP.into()),
                ("UserID", "5".into()),
                ("ExportID", "900".into()),
            ],
        );
        self.b.truth.owners.insert(key.clone(), marker.clone());
        self.b.truth.roles.insert(marker.clone(), "client");
        self.b.truth.must_appear.insert(marker.clone());
        self.b.truth.keys_present.insert(key.clone());
        self.clients.push(Client {
            key,
            marker,
            row,
            enrollments: Vec::new(),
            used: false,
            gone: false,
        });
        self.clients.len() - 1
    }

    fn add_enrollment(&mut self, rng: &mut Rng, client: usize, min_leaves: usize) {
        let key = self.id("E");
        let entry = date(2024, rng.range(1, 40) as u32);
        let pid = self.clients[client].key.clone();
        let row = self.b.push(
            self.enrollment_t,
            &[
                ("EnrollmentID", key.clone()),
                ("PersonalID", pid.clone()),
                ("ProjectID", "P1".into()),
                ("EntryDate", entry.clone()),
                ("HouseholdID", format!("H{key}")),
                ("RelationshipToHoH", "1".into()),
                ("EnrollmentCoC", "XX-500".into()),
                ("LivingSituation", "116".into()),
                ("ReferralSource", (*rng.pick(&["", "1", "7", "38"])).into()),
                ("DateCreated", STAMP.into()),
                ("DateUpdated", STAMP.into()),
                ("UserID", "5".into()),
                ("ExportID", "900".into()),
            ],
        );
        let marker = self.clients[client].marker.clone();
        self.b.truth.owners.insert(key.clone(), marker.clone());
        self.b.truth.keys_present.insert(key.clone());
        let index = self.enrollments.len();
        self.enrollments.push(Enrollment {
            key: key.clone(),
            client,
            row,
            entry: entry.clone(),
            exit: None,
            services: Vec::new(),
            events: Vec::new(),
        });
        self.clients[client].enrollments.push(index);
        // Dates of services and events: from the entry to the exit (or the export's end).
        let exit_date = plus_days(&entry, rng.range(20, 45) as i64);
        if rng.chance(50) {
            let xid = self.id("X");
            let xrow = self.b.push(
                self.exit_t,
                &[
                    ("ExitID", xid.clone()),
                    ("EnrollmentID", key.clone()),
                    ("PersonalID", pid.clone()),
                    ("ExitDate", exit_date.clone()),
                    (
                        "Destination",
                        (*rng.pick(&["116", "101", "215", "410"])).into(),
                    ),
                    ("DateCreated", STAMP.into()),
                    ("DateUpdated", STAMP.into()),
                    ("UserID", "5".into()),
                    ("ExportID", "900".into()),
                ],
            );
            self.b.truth.owners.insert(xid, marker.clone());
            self.enrollments[index].exit = Some((xrow, exit_date.clone()));
            self.b
                .truth
                .encounter_end
                .insert(key.clone(), exit_date.clone());
        }
        for _ in 0..rng.range(min_leaves, 2) {
            let sid = self.id("S");
            let day = plus_days(&entry, rng.range(0, 19) as i64);
            let srow = self.b.push(
                self.services_t,
                &[
                    ("ServicesID", sid.clone()),
                    ("EnrollmentID", key.clone()),
                    ("PersonalID", pid.clone()),
                    ("DateProvided", day),
                    ("RecordType", "141".into()),
                    ("TypeProvided", rng.range(1, 6).to_string()),
                    ("DateCreated", STAMP.into()),
                    ("DateUpdated", STAMP.into()),
                    ("UserID", "5".into()),
                    ("ExportID", "900".into()),
                ],
            );
            self.b.truth.owners.insert(sid.clone(), marker.clone());
            self.b.truth.keys_present.insert(sid);
            self.enrollments[index].services.push(srow);
        }
        for _ in 0..rng.range(min_leaves, 2) {
            let vid = self.id("V");
            let day = plus_days(&entry, rng.range(0, 19) as i64);
            let result = *rng.pick(&["", "", "1", "2", "3"]);
            let vrow = self.b.push(
                self.event_t,
                &[
                    ("EventID", vid.clone()),
                    ("EnrollmentID", key.clone()),
                    ("PersonalID", pid.clone()),
                    ("EventDate", day.clone()),
                    (
                        "Event",
                        (*rng.pick(&["1", "3", "5", "10", "13", "14", "15", "17"])).into(),
                    ),
                    ("ReferralResult", result.into()),
                    (
                        "ResultDate",
                        if result.is_empty() {
                            String::new()
                        } else {
                            plus_days(&day, 1)
                        },
                    ),
                    ("DateCreated", STAMP.into()),
                    ("DateUpdated", STAMP.into()),
                    ("UserID", "5".into()),
                    ("ExportID", "900".into()),
                ],
            );
            self.b.truth.owners.insert(vid.clone(), marker.clone());
            self.b.truth.keys_present.insert(vid);
            self.enrollments[index].events.push(vrow);
        }
    }

    fn lonely_client(&mut self, rng: &mut Rng) -> Option<usize> {
        let free: Vec<usize> = (0..self.clients.len())
            .filter(|&c| !self.clients[c].used && self.clients[c].enrollments.is_empty())
            .collect();
        if free.is_empty() {
            return None;
        }
        let c = *rng.pick(&free);
        self.clients[c].used = true;
        Some(c)
    }

    fn free_client(&mut self, rng: &mut Rng, with_enrollment: bool) -> Option<usize> {
        let free: Vec<usize> = (0..self.clients.len())
            .filter(|&c| {
                !self.clients[c].used
                    && (!with_enrollment || !self.clients[c].enrollments.is_empty())
            })
            .collect();
        if free.is_empty() {
            return None;
        }
        let c = *rng.pick(&free);
        self.clients[c].used = true;
        Some(c)
    }

    /// A service or event row (table, row, enrollment) no fault took, of a client who stays: taken.
    fn take_leaf(&mut self, rng: &mut Rng, tables: &[usize]) -> Option<(usize, usize, usize)> {
        let mut leaves = Vec::new();
        for (e, en) in self.enrollments.iter().enumerate() {
            if self.clients[en.client].gone {
                continue;
            }
            for (t, rows) in [(self.services_t, &en.services), (self.event_t, &en.events)] {
                if tables.contains(&t) {
                    leaves.extend(
                        rows.iter()
                            .filter(|r| !self.b.used_rows.contains(r))
                            .map(|r| (t, *r, e)),
                    );
                }
            }
        }
        if leaves.is_empty() {
            return None;
        }
        let leaf = *rng.pick(&leaves);
        self.b.used_rows.insert(leaf.1);
        let c = self.enrollments[leaf.2].client;
        self.clients[c].used = true;
        Some(leaf)
    }

    /// An enrollment of a client who stays, none of whose rows (enrollment, exit, services, events) a fault
    /// took: taken (no other fault takes it or deletes its client).
    fn take_enrollment(
        &mut self,
        rng: &mut Rng,
        fits: impl Fn(&Enrollment) -> bool,
    ) -> Option<usize> {
        let used = &self.b.used_rows;
        let free: Vec<usize> = (0..self.enrollments.len())
            .filter(|&e| {
                let en = &self.enrollments[e];
                !self.clients[en.client].gone
                    && !used.contains(&en.row)
                    && en.exit.as_ref().is_none_or(|(x, _)| !used.contains(x))
                    && !en
                        .services
                        .iter()
                        .chain(&en.events)
                        .any(|r| used.contains(r))
                    && fits(en)
            })
            .collect();
        if free.is_empty() {
            return None;
        }
        let e = *rng.pick(&free);
        let c = self.enrollments[e].client;
        self.clients[c].used = true;
        self.b.used_rows.insert(self.enrollments[e].row);
        Some(e)
    }

    /// Another client who stays.
    fn take_other(&mut self, rng: &mut Rng, not: usize) -> Option<usize> {
        let free: Vec<usize> = (0..self.clients.len())
            .filter(|&c| c != not && !self.clients[c].gone)
            .collect();
        if free.is_empty() {
            return None;
        }
        let c = *rng.pick(&free);
        self.clients[c].used = true;
        Some(c)
    }

    fn lost_client(&mut self, c: usize, fault: Fault) {
        self.clients[c].gone = true;
        let (marker, key) = (self.clients[c].marker.clone(), self.clients[c].key.clone());
        self.b.truth.must_appear.remove(&marker);
        self.b.truth.must_not_appear.insert(marker.clone());
        self.b.truth.keys_present.remove(&key);
        self.b.on(&marker, fault);
    }

    /// Everything of an enrollment may be reported as a consequence (its enrollment rejected...).
    fn tolerate_enrollment(&mut self, e: usize, with_enrollment_row: bool) {
        let (t_en, t_x, t_s, t_v) = (
            self.enrollment_t,
            self.exit_t,
            self.services_t,
            self.event_t,
        );
        let en = &self.enrollments[e];
        let mut rows = Vec::new();
        if with_enrollment_row {
            rows.push((t_en, en.row));
        }
        if let Some((x, _)) = &en.exit {
            rows.push((t_x, *x));
        }
        rows.extend(en.services.iter().map(|s| (t_s, *s)));
        rows.extend(en.events.iter().map(|v| (t_v, *v)));
        for (t, r) in rows {
            self.b.tolerate(t, r);
        }
    }
}

/// Generate an HMIS export with faults into `dir`.
pub fn hmis(seed: u64, index: usize, dir: &Path) -> Generated {
    let mut rng = Rng::new(seed);
    let mut b = Builder::default();
    let export = b.table("Export.csv", EXPORT);
    let organization = b.table("Organization.csv", ORGANIZATION);
    let project = b.table("Project.csv", PROJECT);
    let client_t = b.table("Client.csv", CLIENT);
    let enrollment_t = b.table("Enrollment.csv", ENROLLMENT);
    let exit_t = b.table("Exit.csv", EXIT);
    let services_t = b.table("Services.csv", SERVICES);
    let event_t = b.table("Event.csv", EVENT);
    let export_fields: Vec<String> = "900,1,XX-500,Harbor HMIS,,,,,,2024-04-01 00:00:00,2024-01-01,2024-03-31,Example,1.0,2024 v1.4,3,2,1,1".split(',').map(str::to_owned).collect();
    let header: Vec<String> = EXPORT.split(',').map(str::to_owned).collect();
    let pairs: Vec<(&str, String)> = header
        .iter()
        .map(String::as_str)
        .zip(export_fields)
        .collect();
    b.push(export, &pairs);
    let org_tag = b.marker("oq");
    b.push(
        organization,
        &[
            ("OrganizationID", "O1".into()),
            ("OrganizationName", format!("Harbor Continuum {org_tag}")),
            ("VictimServiceProvider", "0".into()),
            ("DateCreated", STAMP.into()),
            ("DateUpdated", STAMP.into()),
            ("UserID", "5".into()),
            ("ExportID", "900".into()),
        ],
    );
    b.truth.must_appear.insert(org_tag);
    b.push(
        project,
        &[
            ("ProjectID", "P1".into()),
            ("OrganizationID", "O1".into()),
            ("ProjectName", "Coordinated Entry".into()),
            ("OperatingStartDate", "2020-01-01".into()),
            ("ContinuumProject", "1".into()),
            ("ProjectType", "14".into()),
            ("TargetPopulation", "4".into()),
            ("HOPWAMedAssistedLivingFac", "2".into()),
            ("DateCreated", STAMP.into()),
            ("DateUpdated", STAMP.into()),
            ("UserID", "5".into()),
            ("ExportID", "900".into()),
        ],
    );
    let mut h = Hmis {
        b,
        export_t: export,
        client_t,
        enrollment_t,
        exit_t,
        services_t,
        event_t,
        clients: Vec::new(),
        enrollments: Vec::new(),
        next_id: 0,
    };
    for _ in 0..rng.range(15, 35) {
        let c = h.add_client(&mut rng);
        if rng.chance(75) {
            for _ in 0..rng.range(1, 2) {
                h.add_enrollment(&mut rng, c, 0);
            }
        }
    }
    let mut header_twice = false;
    for fault in choose(&mut rng, HMIS_FAULTS, index) {
        inject_hmis(&mut rng, &mut h, fault, &mut header_twice);
    }
    // Clean last rows, so that no destroyed row is its file's last.
    let c = h.add_client(&mut rng);
    h.add_enrollment(&mut rng, c, 1);
    // An export not known to be unhashed: no client's name is output.
    if h.b.ledger.iter().any(|p| p.fault == Fault::EmptyHashStatus) {
        for client in &h.clients {
            let marker = client.marker.clone();
            h.b.truth.must_appear.remove(&marker);
            h.b.truth.must_not_appear.insert(marker.clone());
            h.b.truth
                .faults_on
                .entry(marker)
                .or_default()
                .insert(Fault::EmptyHashStatus);
        }
    }
    let mut g = h.b.finish(Format::Hmis, seed, dir.to_owned());
    g.truth.birth_not_after = "2024-04-01".into();
    g
}

fn inject_hmis(rng: &mut Rng, h: &mut Hmis, fault: Fault, header_twice: &mut bool) {
    let (client_t, enrollment_t, exit_t, services_t, event_t) = (
        h.client_t,
        h.enrollment_t,
        h.exit_t,
        h.services_t,
        h.event_t,
    );
    match fault {
        Fault::UnterminatedQuote | Fault::RowLongerThanHeader | Fault::ControlCharacter => {
            // A lonely client's row, or a service's or event's (leaves: nothing hangs off them).
            let (table, row) = if rng.chance(50) {
                let Some(c) = h.lonely_client(rng) else {
                    return;
                };
                h.lost_client(c, fault);
                (client_t, h.clients[c].row)
            } else {
                let Some((t, r, _)) = h.take_leaf(rng, &[services_t, event_t]) else {
                    return;
                };
                let key = h.b.tables[t].get(r, h.b.tables[t].header[0].clone().as_str());
                h.b.truth.keys_present.remove(&key);
                h.b.truth.keys_absent.insert(key.clone());
                h.b.on(&key, fault);
                (t, r)
            };
            let file = h.b.tables[table].file;
            let (expect, what): (&'static [&'static str], String) = match fault {
                Fault::UnterminatedQuote => {
                    h.b.tables[table].row_mut(row).raw_last = Some("\"900".into());
                    (
                        &["never closed", "malformed CSV"],
                        format!("{file}: ExportID opens a quote never closed"),
                    )
                }
                Fault::RowLongerThanHeader => {
                    h.b.tables[table].row_mut(row).fields.push("extra".into());
                    (
                        &["fields but the header has"],
                        format!("{file}: a field more than the header"),
                    )
                }
                _ => {
                    let column = if table == client_t {
                        "MiddleName"
                    } else if table == services_t {
                        "OtherTypeProvided"
                    } else {
                        "LocationCrisisOrPHHousing"
                    };
                    h.b.tables[table].set(row, column, "x\u{0}y");
                    (&["control character"], format!("{file}: a NUL in {column}"))
                }
            };
            h.b.fault(
                fault,
                vec![At { table, row }],
                Expect::Rejected(expect),
                what,
            );
        }
        Fault::DuplicateKey => match rng.range(0, 2) {
            0 => {
                // Another person with an existing PersonalID.
                let Some(c) = h.free_client(rng, false) else {
                    return;
                };
                let key = h.clients[c].key.clone();
                let marker = h.b.marker("zq");
                let at = h.b.tables[client_t]
                    .rows
                    .iter()
                    .position(|r| r.id == h.clients[c].row)
                    .expect("row");
                let at = rng.range(at + 1, h.b.tables[client_t].rows.len());
                let row = h.b.insert(
                    client_t,
                    Some(at),
                    &[
                        ("PersonalID", key.clone()),
                        ("FirstName", format!("Dup{marker}")),
                        ("LastName", format!("Other{marker}")),
                        ("NameDataQuality", "1".into()),
                        ("DOB", "1977-07-07".into()),
                        ("DOBDataQuality", "1".into()),
                        ("DateCreated", STAMP.into()),
                        ("DateUpdated", STAMP.into()),
                        ("UserID", "5".into()),
                        ("ExportID", "900".into()),
                    ],
                );
                h.b.used_rows.insert(row);
                h.b.truth.must_not_appear.insert(marker.clone());
                h.b.truth.roles.insert(marker.clone(), "client");
                h.b.on(&marker, fault);
                let first = h.clients[c].marker.clone();
                h.b.on(&first, fault);
                h.b.fault(
                    fault,
                    vec![At {
                        table: client_t,
                        row,
                    }],
                    Expect::Rejected(&["duplicate PersonalID"]),
                    format!("Client.csv: PersonalID '{key}' again, another person"),
                );
            }
            1 => {
                // An EnrollmentID again, for another client.
                let Some(e) = h.take_enrollment(rng, |_| true) else {
                    return;
                };
                let Some(other) = h.take_other(rng, h.enrollments[e].client) else {
                    return;
                };
                let pid = h.clients[other].key.clone();
                let ekey = h.enrollments[e].key.clone();
                let entry = h.enrollments[e].entry.clone();
                let row = h.b.push(
                    enrollment_t,
                    &[
                        ("EnrollmentID", ekey.clone()),
                        ("PersonalID", pid),
                        ("ProjectID", "P1".into()),
                        ("EntryDate", plus_days(&entry, 3)),
                        ("HouseholdID", "HX".into()),
                        ("RelationshipToHoH", "1".into()),
                        ("EnrollmentCoC", "XX-500".into()),
                        ("LivingSituation", "101".into()),
                        ("DateCreated", STAMP.into()),
                        ("DateUpdated", STAMP.into()),
                        ("UserID", "5".into()),
                        ("ExportID", "900".into()),
                    ],
                );
                h.b.used_rows.insert(row);
                h.b.on(&ekey, fault);
                let m = h.clients[other].marker.clone();
                h.b.on(&m, fault);
                h.b.fault(
                    fault,
                    vec![At {
                        table: enrollment_t,
                        row,
                    }],
                    Expect::Rejected(&["duplicate EnrollmentID"]),
                    format!("Enrollment.csv: EnrollmentID '{ekey}' again, another client"),
                );
            }
            _ => {
                // An EventID again, in another enrollment (maybe another client's).
                let Some((_, first, _)) = h.take_leaf(rng, &[event_t]) else {
                    return;
                };
                let Some(e) = h.take_enrollment(rng, |_| true) else {
                    return;
                };
                let vid = h.b.tables[event_t].get(first, "EventID");
                let (ekey, entry) = (h.enrollments[e].key.clone(), h.enrollments[e].entry.clone());
                let pid = h.clients[h.enrollments[e].client].key.clone();
                let row = h.b.push(
                    event_t,
                    &[
                        ("EventID", vid.clone()),
                        ("EnrollmentID", ekey),
                        ("PersonalID", pid),
                        ("EventDate", plus_days(&entry, 1)),
                        ("Event", "13".into()),
                        ("DateCreated", STAMP.into()),
                        ("DateUpdated", STAMP.into()),
                        ("UserID", "5".into()),
                        ("ExportID", "900".into()),
                    ],
                );
                h.b.used_rows.insert(row);
                h.b.on(&vid, fault);
                h.b.fault(
                    fault,
                    vec![At {
                        table: event_t,
                        row,
                    }],
                    Expect::Rejected(&["duplicate EventID"]),
                    format!("Event.csv: EventID '{vid}' again, another enrollment"),
                );
            }
        },
        Fault::NotTheEnrollmentsClient | Fault::ExitOfAnotherClient => {
            let variant = if fault == Fault::ExitOfAnotherClient {
                2
            } else {
                rng.range(0, 1)
            };
            let Some(e) = h.take_enrollment(rng, |en| variant != 2 || en.exit.is_none()) else {
                return;
            };
            let owner = h.enrollments[e].client;
            let Some(other) = h.take_other(rng, owner) else {
                return;
            };
            let pid = h.clients[other].key.clone();
            let ekey = h.enrollments[e].key.clone();
            let entry = h.enrollments[e].entry.clone();
            let common = [
                ("DateCreated", STAMP.to_owned()),
                ("DateUpdated", STAMP.to_owned()),
                ("UserID", "5".to_owned()),
                ("ExportID", "900".to_owned()),
            ];
            let (table, row, file, key) = match variant {
                0 => {
                    let vid = h.id("V");
                    let mut values = vec![
                        ("EventID", vid.clone()),
                        ("EnrollmentID", ekey.clone()),
                        ("PersonalID", pid.clone()),
                        ("EventDate", plus_days(&entry, 2)),
                        ("Event", "13".into()),
                    ];
                    values.extend(common.iter().cloned());
                    (event_t, h.b.push(event_t, &values), "Event.csv", vid)
                }
                1 => {
                    let sid = h.id("S");
                    let mut values = vec![
                        ("ServicesID", sid.clone()),
                        ("EnrollmentID", ekey.clone()),
                        ("PersonalID", pid.clone()),
                        ("DateProvided", plus_days(&entry, 2)),
                        ("RecordType", "141".into()),
                        ("TypeProvided", "2".into()),
                    ];
                    values.extend(common.iter().cloned());
                    (
                        services_t,
                        h.b.push(services_t, &values),
                        "Services.csv",
                        sid,
                    )
                }
                _ => {
                    // An exit of an open enrollment, naming another client.
                    let xid = h.id("X");
                    let day = plus_days(&entry, 45);
                    let mut values = vec![
                        ("ExitID", xid.clone()),
                        ("EnrollmentID", ekey.clone()),
                        ("PersonalID", pid.clone()),
                        ("ExitDate", day.clone()),
                        ("Destination", "116".into()),
                    ];
                    values.extend(common.iter().cloned());
                    let row = h.b.push(exit_t, &values);
                    h.enrollments[e].exit = Some((row, day));
                    // The enrollment then has a rejected exit: it may be reported with it.
                    h.tolerate_enrollment(e, true);
                    (exit_t, row, "Exit.csv", xid)
                }
            };
            h.b.used_rows.insert(row);
            h.b.truth.keys_absent.insert(key.clone());
            let (m1, m2) = (
                h.clients[owner].marker.clone(),
                h.clients[other].marker.clone(),
            );
            h.b.on(&m1, fault);
            h.b.on(&m2, fault);
            h.b.on(&key, fault);
            h.b.on(&ekey, fault);
            h.b.fault(
                fault,
                vec![At { table, row }],
                Expect::Rejected(&["is not the client of enrollment"]),
                format!("{file}: {key} names client {pid}, enrollment {ekey} is another's"),
            );
        }
        Fault::DeletedClientWithRecords => {
            let Some(c) = h.free_client(rng, true) else {
                return;
            };
            let row = h.clients[c].row;
            h.b.tables[client_t].set(row, "DateDeleted", "2024-03-02 00:00:00");
            h.lost_client(c, fault);
            let key = h.clients[c].key.clone();
            h.b.truth.keys_absent.insert(key.clone());
            h.b.fault(
                fault,
                vec![At {
                    table: client_t,
                    row,
                }],
                Expect::Skipped(&["deleted (DateDeleted)"]),
                format!("Client.csv: client {key} deleted"),
            );
            for e in h.clients[c].enrollments.clone() {
                let en = &h.enrollments[e];
                let mut rows = vec![(enrollment_t, en.row)];
                if let Some((x, _)) = &en.exit {
                    rows.push((exit_t, *x));
                }
                rows.extend(en.services.iter().map(|s| (services_t, *s)));
                rows.extend(en.events.iter().map(|v| (event_t, *v)));
                for (table, row) in rows {
                    let key =
                        h.b.tables[table].get(row, h.b.tables[table].header[0].clone().as_str());
                    h.b.truth.keys_present.remove(&key);
                    h.b.truth.keys_absent.insert(key.clone());
                    h.b.on(&key, fault);
                    h.b.used_rows.insert(row);
                    let file = h.b.tables[table].file;
                    h.b.fault(
                        fault,
                        vec![At { table, row }],
                        Expect::Skipped(&["its client is deleted"]),
                        format!("{file}: a row of deleted client {}", h.clients[c].key),
                    );
                }
            }
        }
        Fault::DeletedEnrollmentWithRecords => {
            let Some(e) = h.take_enrollment(rng, |en| {
                en.exit.is_some() || !en.services.is_empty() || !en.events.is_empty()
            }) else {
                return;
            };
            let (ekey, erow) = (h.enrollments[e].key.clone(), h.enrollments[e].row);
            h.b.tables[enrollment_t].set(erow, "DateDeleted", "2024-03-02 00:00:00");
            h.b.used_rows.insert(erow);
            h.b.truth.keys_present.remove(&ekey);
            h.b.truth.keys_absent.insert(ekey.clone());
            h.b.on(&ekey, fault);
            h.b.fault(
                fault,
                vec![At {
                    table: enrollment_t,
                    row: erow,
                }],
                Expect::Skipped(&["deleted (DateDeleted)"]),
                format!("Enrollment.csv: enrollment {ekey} deleted"),
            );
            let en = &h.enrollments[e];
            let mut rows = Vec::new();
            if let Some((x, _)) = &en.exit {
                rows.push((exit_t, *x));
            }
            rows.extend(en.services.iter().map(|s| (services_t, *s)));
            rows.extend(en.events.iter().map(|v| (event_t, *v)));
            for (table, row) in rows {
                let key = h.b.tables[table].get(row, h.b.tables[table].header[0].clone().as_str());
                h.b.truth.keys_present.remove(&key);
                h.b.truth.keys_absent.insert(key.clone());
                h.b.on(&key, fault);
                h.b.used_rows.insert(row);
                let file = h.b.tables[table].file;
                h.b.fault(
                    fault,
                    vec![At { table, row }],
                    Expect::Skipped(&["its enrollment is deleted"]),
                    format!("{file}: a row of deleted enrollment {ekey}"),
                );
            }
        }
        Fault::SecondExit => {
            let Some(e) = h.take_enrollment(rng, |en| en.exit.is_some()) else {
                return;
            };
            let (xrow, first) = h.enrollments[e].exit.clone().expect("exit");
            h.b.used_rows.insert(xrow);
            let (ekey, pid) = (
                h.enrollments[e].key.clone(),
                h.clients[h.enrollments[e].client].key.clone(),
            );
            let xid = h.id("X");
            let row = h.b.push(
                exit_t,
                &[
                    ("ExitID", xid.clone()),
                    ("EnrollmentID", ekey.clone()),
                    ("PersonalID", pid),
                    ("ExitDate", plus_days(&first, 5)),
                    ("Destination", "101".into()),
                    ("DateCreated", STAMP.into()),
                    ("DateUpdated", STAMP.into()),
                    ("UserID", "5".into()),
                    ("ExportID", "900".into()),
                ],
            );
            h.b.used_rows.insert(row);
            h.b.on(&ekey, fault);
            h.b.on(&xid, fault);
            h.b.fault(
                fault,
                vec![At { table: exit_t, row }],
                Expect::Rejected(&[""]),
                format!(
                    "Exit.csv: a second exit {xid} of enrollment {ekey}, 5 days after the first"
                ),
            );
        }
        Fault::EmptyHashStatus => {
            let export = h.export_t;
            let first = h.b.tables[export].rows[0].id;
            if h.b.tables[export].get(first, "HashStatus").is_empty() {
                return;
            }
            h.b.tables[export].set(first, "HashStatus", "");
            h.b.fault(
                fault,
                vec![At {
                    table: export,
                    row: first,
                }],
                Expect::FileQuirk(&["HashStatus"]),
                "Export.csv: HashStatus empty",
            );
        }
        Fault::DeletedExit => {
            let Some(e) = h.take_enrollment(rng, |en| en.exit.is_some()) else {
                return;
            };
            let (xrow, _) = h.enrollments[e].exit.clone().expect("exit");
            h.b.used_rows.insert(xrow);
            h.b.tables[exit_t].set(xrow, "DateDeleted", "2024-03-02 00:00:00");
            let ekey = h.enrollments[e].key.clone();
            let xkey = h.b.tables[exit_t].get(xrow, "ExitID");
            h.b.truth.open_encounters.insert(ekey.clone());
            h.b.truth.encounter_end.remove(&ekey);
            h.b.on(&ekey, fault);
            h.b.on(&xkey, fault);
            h.b.fault(
                fault,
                vec![At {
                    table: exit_t,
                    row: xrow,
                }],
                Expect::Skipped(&["deleted (DateDeleted)"]),
                format!("Exit.csv: the exit of enrollment {ekey} deleted"),
            );
        }
        Fault::NamePlaceholder => {
            let Some(c) = h.free_client(rng, false) else {
                return;
            };
            let row = h.clients[c].row;
            let quality = *rng.pick(&["8", "9", "99"]);
            h.b.tables[client_t].set(row, "NameDataQuality", quality);
            let marker = h.clients[c].marker.clone();
            h.b.truth.must_appear.remove(&marker);
            h.b.truth.must_not_appear.insert(marker.clone());
            h.b.on(&marker, fault);
            h.b.fault(
                fault,
                vec![At {
                    table: client_t,
                    row,
                }],
                Expect::Quirk(&["NameDataQuality 8, 9 or 99"]),
                format!("Client.csv: NameDataQuality {quality}"),
            );
        }
        Fault::ApproximateDob | Fault::BirthDateInFuture | Fault::BirthDateIn1800 => {
            let Some(c) = h.free_client(rng, false) else {
                return;
            };
            let row = h.clients[c].row;
            let (expect, what): (&'static [&'static str], &str) = match fault {
                Fault::ApproximateDob => {
                    h.b.tables[client_t].set(row, "DOBDataQuality", "2");
                    let key = h.clients[c].key.clone();
                    h.b.truth.year_only_birth.insert(key);
                    (&["approximate DOB"], "DOBDataQuality 2")
                }
                Fault::BirthDateInFuture => {
                    h.b.tables[client_t].set(row, "DOB", "2090-01-01");
                    (&["DOB after the export date"], "DOB 2090-01-01")
                }
                _ => {
                    h.b.tables[client_t].set(row, "DOB", "1800-01-01");
                    (&["DOB before 1900"], "DOB 1800-01-01")
                }
            };
            let marker = h.clients[c].marker.clone();
            h.b.on(&marker, fault);
            h.b.fault(
                fault,
                vec![At {
                    table: client_t,
                    row,
                }],
                Expect::Quirk(expect),
                format!("Client.csv: {what}"),
            );
        }
        Fault::ExitBeforeEntry => {
            let Some(e) = h.take_enrollment(rng, |en| en.exit.is_some()) else {
                return;
            };
            let (xrow, _) = h.enrollments[e].exit.clone().expect("exit");
            h.b.used_rows.insert(xrow);
            let before = plus_days(&h.enrollments[e].entry, -10);
            h.b.tables[exit_t].set(xrow, "ExitDate", before);
            let ekey = h.enrollments[e].key.clone();
            h.b.truth.encounter_end.remove(&ekey);
            h.tolerate_enrollment(e, true);
            let c = h.enrollments[e].client;
            let marker = h.clients[c].marker.clone();
            h.b.on(&marker, fault);
            let ekey = h.enrollments[e].key.clone();
            h.b.on(&ekey, fault);
            h.b.fault(
                fault,
                vec![At {
                    table: exit_t,
                    row: xrow,
                }],
                Expect::Rejected(&["before the enrollment's EntryDate"]),
                "Exit.csv: ExitDate 10 days before the EntryDate",
            );
        }
        Fault::EventOutsideEnrollment => {
            // An event or a service dated 30 days before its enrollment's EntryDate.
            let Some((table, v, e)) = h.take_leaf(rng, &[event_t, services_t]) else {
                return;
            };
            let before = plus_days(&h.enrollments[e].entry, -30);
            let (column, expect): (&str, &'static [&'static str]) = if table == event_t {
                h.b.tables[event_t].set(v, "ReferralResult", "");
                h.b.tables[event_t].set(v, "ResultDate", "");
                ("EventDate", &["EventDate outside its enrollment"])
            } else {
                ("DateProvided", &["DateProvided outside its enrollment"])
            };
            h.b.tables[table].set(v, column, before);
            let key = h.b.tables[table].get(v, h.b.tables[table].header[0].clone().as_str());
            h.b.on(&key, fault);
            let marker = h.clients[h.enrollments[e].client].marker.clone();
            h.b.on(&marker, fault);
            let file = h.b.tables[table].file;
            h.b.fault(
                fault,
                vec![At { table, row: v }],
                Expect::Quirk(expect),
                format!("{file}: {column} 30 days before the EntryDate"),
            );
        }
        Fault::UnknownReferralResult | Fault::UnknownCode | Fault::UnknownEventCode => {
            let tables: &[usize] = if fault == Fault::UnknownCode {
                &[services_t]
            } else {
                &[event_t]
            };
            let Some((table, row, _)) = h.take_leaf(rng, tables) else {
                return;
            };
            let (column, value) = if fault == Fault::UnknownReferralResult {
                let date = h.b.tables[event_t].get(row, "EventDate");
                h.b.tables[event_t].set(row, "ResultDate", plus_days(&date, 1));
                ("ReferralResult", "7")
            } else if fault == Fault::UnknownEventCode {
                ("Event", "99")
            } else {
                ("RecordType", "999")
            };
            h.b.tables[table].set(row, column, value);
            let key = h.b.tables[table].get(row, h.b.tables[table].header[0].clone().as_str());
            h.b.truth.keys_present.remove(&key);
            h.b.truth.keys_absent.insert(key.clone());
            h.b.on(&key, fault);
            let file = h.b.tables[table].file;
            h.b.fault(
                fault,
                vec![At { table, row }],
                Expect::Rejected(&["unknown code"]),
                format!("{file}: {column} '{value}'"),
            );
        }
        Fault::HeaderTwiceInDifferentCase => {
            if !*header_twice {
                *header_twice = true;
                let first = h.b.tables[client_t].col("FirstName");
                h.b.tables[client_t].insert_column("LastName", "FIRSTNAME", |row, _| {
                    if row.id % 2 == 0 {
                        row.fields[first].clone()
                    } else {
                        String::new()
                    }
                });
                h.b.fault(
                    fault,
                    vec![At {
                        table: client_t,
                        row: HEADER,
                    }],
                    Expect::Quirk(&["repeats column"]),
                    "Client.csv: header gives FirstName and FIRSTNAME",
                );
            }
            let Some(c) = h.lonely_client(rng) else {
                return;
            };
            let row = h.clients[c].row;
            let marker = h.clients[c].marker.clone();
            h.b.tables[client_t].set(row, "FIRSTNAME", format!("Other{marker}"));
            h.lost_client(c, fault);
            h.b.fault(
                fault,
                vec![At {
                    table: client_t,
                    row,
                }],
                Expect::Rejected(&["twice"]),
                "Client.csv: FirstName and FIRSTNAME differ",
            );
        }
        _ => unreachable!("not an HMIS fault: {fault:?}"),
    }
}

/// Scan text for markers (`zq`, `rq`, `oq` and five digits).
pub fn markers_in(text: &str, into: &mut BTreeSet<String>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i + 7 <= bytes.len() {
        let prefix = &bytes[i..i + 2];
        if (prefix == b"zq" || prefix == b"rq" || prefix == b"oq")
            && bytes[i + 2..i + 7].iter().all(u8::is_ascii_digit)
        {
            into.insert(String::from_utf8_lossy(&bytes[i..i + 7]).into_owned());
            i += 7;
        } else {
            i += 1;
        }
    }
}

/// A one-line description of the ledger, for failure messages.
pub fn describe(g: &Generated) -> String {
    let mut out = String::new();
    for i in &g.ledger {
        let _ = writeln!(
            out,
            "  {:?} at {} line(s) {:?}: {} (expect {:?})",
            i.fault, i.file, i.lines, i.what, i.expect
        );
    }
    out
}

//! The OneRoster 1.1 and 1.2 CSV tables onedoor reads, with the misspellings seen in real exports.

use crate::adapters::ContextTable;
use crate::adapters::csv_table::TableSpec;

/// `users.csv`: the union of the 1.1 columns (`role`, `orgSourcedIds`) and the 1.2 columns.
pub const USERS: TableSpec = TableSpec {
    file: "users.csv",
    columns: USER_COLUMNS,
    required: &["sourcedId"],
    aliases: &[
        ("prefferedGivenName", "preferredGivenName"),
        ("prefferedMiddleName", "preferredMiddleName"),
        ("prefferedFamilyName", "preferredFamilyName"),
        ("dataLastModified", "dateLastModified"),
    ],
};

/// Columns of `users.csv` (1.1 and 1.2).
pub const USER_COLUMNS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
    "userMasterIdentifier",
    "preferredGivenName",
    "preferredMiddleName",
    "preferredFamilyName",
    "primaryOrgSourcedId",
    "pronouns",
];

/// `roles.csv` (1.2): a user's role at an org.
pub const ROLES: TableSpec = TableSpec {
    file: "roles.csv",
    columns: &[
        "sourcedId",
        "status",
        "dateLastModified",
        "userSourcedId",
        "roleType",
        "role",
        "beginDate",
        "endDate",
        "orgSourcedId",
        "userProfileSourcedId",
    ],
    required: &["userSourcedId", "role"],
    aliases: &[("dataLastModified", "dateLastModified")],
};

/// `demographics.csv`: birth date, sex, race and ethnicity flags, keyed by the user's sourcedId.
pub const DEMOGRAPHICS: TableSpec = TableSpec {
    file: "demographics.csv",
    columns: DEMOGRAPHIC_COLUMNS,
    required: &["sourcedId"],
    aliases: &[("dataLastModified", "dateLastModified")],
};

const DEMOGRAPHIC_COLUMNS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "birthDate",
    "sex",
    "americanIndianOrAlaskaNative",
    "asian",
    "blackOrAfricanAmerican",
    "nativeHawaiianOrOtherPacificIslander",
    "white",
    "demographicRaceTwoOrMoreRaces",
    "hispanicOrLatinoEthnicity",
    "countryOfBirthCode",
    "stateOfBirthAbbreviation",
    "cityOfBirth",
    "publicSchoolResidenceStatus",
];

/// `orgs.csv`: districts, schools, departments.
pub const ORGS: TableSpec = TableSpec {
    file: "orgs.csv",
    columns: ORG_COLUMNS,
    required: &["sourcedId", "name"],
    aliases: &[("dataLastModified", "dateLastModified")],
};

/// Columns of `orgs.csv`.
pub const ORG_COLUMNS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "name",
    "type",
    "identifier",
    "parentSourcedId",
];

/// `enrollments.csv`: used only to recognise students in exports without roles.
pub const ENROLLMENTS: TableSpec = TableSpec {
    file: "enrollments.csv",
    columns: &[
        "sourcedId",
        "status",
        "dateLastModified",
        "classSourcedId",
        "schoolSourcedId",
        "userSourcedId",
        "role",
        "primary",
        "beginDate",
        "endDate",
    ],
    required: &["userSourcedId", "role"],
    aliases: &[("dataLastModified", "dateLastModified")],
};

/// `manifest.csv`: the version of the export.
pub const MANIFEST: TableSpec = TableSpec {
    file: "manifest.csv",
    columns: &["propertyName", "value"],
    required: &["propertyName", "value"],
    aliases: &[],
};

/// Columns the adapter itself reads to select and join records (reported as read in coverage).
pub const READ_BY_ADAPTER: &[(&str, &str)] = &[
    ("users.csv", "sourcedId"),
    ("users.csv", "status"),
    ("users.csv", "role"),
    ("users.csv", "agentSourcedIds"),
    ("users.csv", "primaryOrgSourcedId"),
    ("users.csv", "orgSourcedIds"),
    ("roles.csv", "userSourcedId"),
    ("roles.csv", "role"),
    ("roles.csv", "orgSourcedId"),
    ("roles.csv", "status"),
    ("demographics.csv", "sourcedId"),
    ("orgs.csv", "sourcedId"),
    ("orgs.csv", "status"),
    ("orgs.csv", "parentSourcedId"),
    ("enrollments.csv", "userSourcedId"),
    ("enrollments.csv", "role"),
    ("enrollments.csv", "status"),
    ("manifest.csv", "propertyName"),
    ("manifest.csv", "value"),
];

/// The variables a OneRoster mapping sees, and the table each comes from.
pub const CONTEXT: &[ContextTable] = &[
    ContextTable {
        variable: "user",
        table: "users.csv",
        columns: USER_COLUMNS,
    },
    ContextTable {
        variable: "student",
        table: "users.csv",
        columns: USER_COLUMNS,
    },
    ContextTable {
        variable: "guardian",
        table: "users.csv",
        columns: USER_COLUMNS,
    },
    ContextTable {
        variable: "demographics",
        table: "demographics.csv",
        columns: DEMOGRAPHIC_COLUMNS,
    },
    ContextTable {
        variable: "school",
        table: "orgs.csv",
        columns: ORG_COLUMNS,
    },
    ContextTable {
        variable: "org",
        table: "orgs.csv",
        columns: ORG_COLUMNS,
    },
    ContextTable {
        variable: "parent",
        table: "orgs.csv",
        columns: ORG_COLUMNS,
    },
    ContextTable {
        variable: "relationship",
        table: "roles.csv",
        columns: &[],
    },
    ContextTable {
        variable: "guardian_count",
        table: "users.csv",
        columns: &[],
    },
];

/// The record kinds this adapter yields.
pub const RECORD_KINDS: &[&str] = &["student", "guardian_link", "org"];

//! The HUD HMIS CSV FY2024 tables onedoor reads (HMIS CSV Format Specifications), and what a mapping sees.

use crate::adapters::ContextTable;
use crate::adapters::csv_table::TableSpec;

/// Columns of `Client.csv`.
pub const CLIENT_COLUMNS: &[&str] = &[
    "PersonalID",
    "FirstName",
    "MiddleName",
    "LastName",
    "NameSuffix",
    "NameDataQuality",
    "SSN",
    "SSNDataQuality",
    "DOB",
    "DOBDataQuality",
    "AmIndAKNative",
    "Asian",
    "BlackAfAmerican",
    "HispanicLatinaeo",
    "MidEastNAfrican",
    "NativeHIPacific",
    "White",
    "RaceNone",
    "AdditionalRaceEthnicity",
    "Woman",
    "Man",
    "NonBinary",
    "CulturallySpecific",
    "Transgender",
    "Questioning",
    "DifferentIdentity",
    "GenderNone",
    "DifferentIdentityText",
    "VeteranStatus",
    "YearEnteredService",
    "YearSeparated",
    "WorldWarII",
    "KoreanWar",
    "VietnamWar",
    "DesertStorm",
    "AfghanistanOEF",
    "IraqOIF",
    "IraqOND",
    "OtherTheater",
    "MilitaryBranch",
    "DischargeStatus",
    "DateCreated",
    "DateUpdated",
    "UserID",
    "DateDeleted",
    "ExportID",
];
/// `Client.csv`.
pub const CLIENT: TableSpec = TableSpec {
    file: "Client.csv",
    columns: CLIENT_COLUMNS,
    required: &["PersonalID"],
    aliases: &[],
};

/// Columns of `Event.csv`.
pub const EVENT_COLUMNS: &[&str] = &[
    "EventID",
    "EnrollmentID",
    "PersonalID",
    "EventDate",
    "Event",
    "ProbSolDivRRResult",
    "ReferralCaseManageAfter",
    "LocationCrisisOrPHHousing",
    "ReferralResult",
    "ResultDate",
    "DateCreated",
    "DateUpdated",
    "UserID",
    "DateDeleted",
    "ExportID",
];
/// `Event.csv`.
pub const EVENT: TableSpec = TableSpec {
    file: "Event.csv",
    columns: EVENT_COLUMNS,
    required: &["EventID", "PersonalID", "Event"],
    aliases: &[],
};

/// Columns of `Enrollment.csv`.
pub const ENROLLMENT_COLUMNS: &[&str] = &[
    "EnrollmentID",
    "PersonalID",
    "ProjectID",
    "EntryDate",
    "HouseholdID",
    "RelationshipToHoH",
    "EnrollmentCoC",
    "LivingSituation",
    "RentalSubsidyType",
    "LengthOfStay",
    "LOSUnderThreshold",
    "PreviousStreetESSH",
    "DateToStreetESSH",
    "TimesHomelessPastThreeYears",
    "MonthsHomelessPastThreeYears",
    "DisablingCondition",
    "DateOfEngagement",
    "MoveInDate",
    "DateOfPATHStatus",
    "ClientEnrolledInPATH",
    "ReasonNotEnrolled",
    "PercentAMI",
    "ReferralSource",
    "CountOutreachReferralApproaches",
    "DateOfBCPStatus",
    "EligibleForRHY",
    "ReasonNoServices",
    "RunawayYouth",
    "SexualOrientation",
    "SexualOrientationOther",
    "FormerWardChildWelfare",
    "ChildWelfareYears",
    "ChildWelfareMonths",
    "FormerWardJuvenileJustice",
    "JuvenileJusticeYears",
    "JuvenileJusticeMonths",
    "UnemploymentFam",
    "MentalHealthDisorderFam",
    "PhysicalDisabilityFam",
    "AlcoholDrugUseDisorderFam",
    "InsufficientIncome",
    "IncarceratedParent",
    "VAMCStation",
    "TargetScreenReqd",
    "TimeToHousingLoss",
    "AnnualPercentAMI",
    "LiteralHomelessHistory",
    "ClientLeaseholder",
    "HOHLeaseholder",
    "SubsidyAtRisk",
    "EvictionHistory",
    "CriminalRecord",
    "IncarceratedAdult",
    "PrisonDischarge",
    "SexOffender",
    "DisabledHoH",
    "CurrentPregnant",
    "SingleParent",
    "DependentUnder6",
    "HH5Plus",
    "CoCPrioritized",
    "HPScreeningScore",
    "ThresholdScore",
    "TranslationNeeded",
    "PreferredLanguage",
    "PreferredLanguageDifferent",
    "DateCreated",
    "DateUpdated",
    "UserID",
    "DateDeleted",
    "ExportID",
];
/// `Enrollment.csv`.
pub const ENROLLMENT: TableSpec = TableSpec {
    file: "Enrollment.csv",
    columns: ENROLLMENT_COLUMNS,
    required: &["EnrollmentID", "PersonalID"],
    aliases: &[],
};

/// Columns of `Project.csv`.
pub const PROJECT_COLUMNS: &[&str] = &[
    "ProjectID",
    "OrganizationID",
    "ProjectName",
    "ProjectCommonName",
    "OperatingStartDate",
    "OperatingEndDate",
    "ContinuumProject",
    "ProjectType",
    "HousingType",
    "RRHSubType",
    "ResidentialAffiliation",
    "TargetPopulation",
    "HOPWAMedAssistedLivingFac",
    "PITCount",
    "DateCreated",
    "DateUpdated",
    "UserID",
    "DateDeleted",
    "ExportID",
];
/// `Project.csv`.
pub const PROJECT: TableSpec = TableSpec {
    file: "Project.csv",
    columns: PROJECT_COLUMNS,
    required: &["ProjectID"],
    aliases: &[],
};

/// Columns of `Organization.csv`.
pub const ORGANIZATION_COLUMNS: &[&str] = &[
    "OrganizationID",
    "OrganizationName",
    "VictimServiceProvider",
    "OrganizationCommonName",
    "DateCreated",
    "DateUpdated",
    "UserID",
    "DateDeleted",
    "ExportID",
];
/// `Organization.csv`.
pub const ORGANIZATION: TableSpec = TableSpec {
    file: "Organization.csv",
    columns: ORGANIZATION_COLUMNS,
    required: &["OrganizationID", "OrganizationName"],
    aliases: &[],
};

/// Columns of `Export.csv`.
pub const EXPORT_COLUMNS: &[&str] = &[
    "ExportID",
    "SourceType",
    "SourceID",
    "SourceName",
    "SourceContactFirst",
    "SourceContactLast",
    "SourceContactPhone",
    "SourceContactExtension",
    "SourceContactEmail",
    "ExportDate",
    "ExportStartDate",
    "ExportEndDate",
    "SoftwareName",
    "SoftwareVersion",
    "CSVVersion",
    "ExportPeriodType",
    "ExportDirective",
    "HashStatus",
    "ImplementationID",
];
/// `Export.csv`.
pub const EXPORT: TableSpec = TableSpec {
    file: "Export.csv",
    columns: EXPORT_COLUMNS,
    required: &["ExportID"],
    aliases: &[],
};

/// The variables an HMIS mapping sees.
pub const CONTEXT: &[ContextTable] = &[
    ContextTable {
        variable: "client",
        table: "Client.csv",
        columns: CLIENT_COLUMNS,
    },
    ContextTable {
        variable: "event",
        table: "Event.csv",
        columns: EVENT_COLUMNS,
    },
    ContextTable {
        variable: "enrollment",
        table: "Enrollment.csv",
        columns: ENROLLMENT_COLUMNS,
    },
    ContextTable {
        variable: "project",
        table: "Project.csv",
        columns: PROJECT_COLUMNS,
    },
    ContextTable {
        variable: "organization",
        table: "Organization.csv",
        columns: ORGANIZATION_COLUMNS,
    },
    ContextTable {
        variable: "export",
        table: "Export.csv",
        columns: EXPORT_COLUMNS,
    },
];

/// The record kinds this adapter yields.
pub const RECORD_KINDS: &[&str] = &["client", "event", "organization"];

/// Columns the adapter itself reads to join and to honour deletions (reported as read in coverage).
pub const READ_BY_ADAPTER: &[(&str, &str)] = &[
    ("Client.csv", "PersonalID"),
    ("Client.csv", "DateDeleted"),
    ("Event.csv", "EnrollmentID"),
    ("Event.csv", "PersonalID"),
    ("Event.csv", "DateDeleted"),
    ("Enrollment.csv", "EnrollmentID"),
    ("Enrollment.csv", "ProjectID"),
    ("Enrollment.csv", "DateDeleted"),
    ("Project.csv", "ProjectID"),
    ("Project.csv", "OrganizationID"),
    ("Organization.csv", "OrganizationID"),
    ("Organization.csv", "DateDeleted"),
    ("Export.csv", "HashStatus"),
];

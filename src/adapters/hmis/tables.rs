//! The HUD HMIS CSV FY2024 tables onedoor reads (HMIS CSV Format Specifications), and what a mapping sees.
//! FY2026 exports are read too: their `Client.csv` carries `Sex` (3.06a) instead of the FY2024 gender fields.

use crate::adapters::ContextTable;
use crate::adapters::csv_table::TableSpec;

/// The FY2024 `Client.csv` header: every column read but FY2026's `Sex`.
pub fn client_columns_fy2024() -> Vec<&'static str> {
    CLIENT_READ_COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != "Sex")
        .collect()
}

/// Columns `Client.csv` may hold: FY2024's, and FY2026's `Sex` (HUD 3.06a: 0 Female, 1 Male, 8 Client doesn't
/// know, 9 Client prefers not to answer, 99 Data not collected), which replaces the gender fields.
/// [`client_columns_fy2024`] gives the FY2024 header the encoder writes.
pub const CLIENT_READ_COLUMNS: &[&str] = &[
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
    "Sex",
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
/// `Client.csv` (FY2024 or FY2026).
pub const CLIENT: TableSpec = TableSpec {
    file: "Client.csv",
    columns: CLIENT_READ_COLUMNS,
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

/// Columns of `Exit.csv`.
pub const EXIT_COLUMNS: &[&str] = &[
    "ExitID",
    "EnrollmentID",
    "PersonalID",
    "ExitDate",
    "Destination",
    "DestinationSubsidyType",
    "OtherDestination",
    "HousingAssessment",
    "SubsidyInformation",
    "ProjectCompletionStatus",
    "EarlyExitReason",
    "ExchangeForSex",
    "ExchangeForSexPastThreeMonths",
    "CountOfExchangeForSex",
    "AskedOrForcedToExchangeForSex",
    "AskedOrForcedToExchangeForSexPastThreeMonths",
    "WorkplaceViolenceThreats",
    "WorkplacePromiseDifference",
    "CoercedToContinueWork",
    "LaborExploitPastThreeMonths",
    "CounselingReceived",
    "IndividualCounseling",
    "FamilyCounseling",
    "GroupCounseling",
    "SessionCountAtExit",
    "PostExitCounselingPlan",
    "SessionsInPlan",
    "DestinationSafeClient",
    "DestinationSafeWorker",
    "PosAdultConnections",
    "PosPeerConnections",
    "PosCommunityConnections",
    "AftercareDate",
    "AftercareProvided",
    "EmailSocialMedia",
    "Telephone",
    "InPersonIndividual",
    "InPersonGroup",
    "CMExitReason",
    "DateCreated",
    "DateUpdated",
    "UserID",
    "DateDeleted",
    "ExportID",
];
/// `Exit.csv`.
pub const EXIT: TableSpec = TableSpec {
    file: "Exit.csv",
    columns: EXIT_COLUMNS,
    required: &["ExitID", "EnrollmentID", "ExitDate"],
    aliases: &[],
};

/// Columns of `Services.csv`.
pub const SERVICES_COLUMNS: &[&str] = &[
    "ServicesID",
    "EnrollmentID",
    "PersonalID",
    "DateProvided",
    "RecordType",
    "TypeProvided",
    "OtherTypeProvided",
    "MovingOnOtherType",
    "SubTypeProvided",
    "FAAmount",
    "FAStartDate",
    "FAEndDate",
    "ReferralOutcome",
    "DateCreated",
    "DateUpdated",
    "UserID",
    "DateDeleted",
    "ExportID",
];
/// `Services.csv`.
pub const SERVICES: TableSpec = TableSpec {
    file: "Services.csv",
    columns: SERVICES_COLUMNS,
    required: &["ServicesID", "PersonalID", "RecordType"],
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
        columns: CLIENT_READ_COLUMNS,
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
        variable: "exit",
        table: "Exit.csv",
        columns: EXIT_COLUMNS,
    },
    ContextTable {
        variable: "service",
        table: "Services.csv",
        columns: SERVICES_COLUMNS,
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
    ContextTable {
        variable: "exit_rejected",
        table: "Exit.csv",
        columns: &[],
    },
];

/// The record kinds this adapter yields.
pub const RECORD_KINDS: &[&str] = &[
    "client",
    "enrollment",
    "exit",
    "service",
    "event",
    "organization",
];

/// Columns the adapter itself reads to join and to honour deletions (reported as read in coverage).
pub const READ_BY_ADAPTER: &[(&str, &str)] = &[
    ("Client.csv", "PersonalID"),
    ("Client.csv", "DateDeleted"),
    ("Event.csv", "EnrollmentID"),
    ("Event.csv", "PersonalID"),
    ("Event.csv", "DateDeleted"),
    ("Enrollment.csv", "EnrollmentID"),
    ("Enrollment.csv", "ProjectID"),
    ("Enrollment.csv", "PersonalID"),
    ("Enrollment.csv", "DateDeleted"),
    ("Exit.csv", "EnrollmentID"),
    ("Exit.csv", "DateDeleted"),
    ("Services.csv", "EnrollmentID"),
    ("Services.csv", "PersonalID"),
    ("Services.csv", "DateDeleted"),
    ("Project.csv", "ProjectID"),
    ("Project.csv", "OrganizationID"),
    ("Organization.csv", "OrganizationID"),
    ("Organization.csv", "DateDeleted"),
    ("Export.csv", "HashStatus"),
];

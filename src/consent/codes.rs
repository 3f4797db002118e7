//! The codes consent understands: purposes of use (HL7 v3 PurposeOfUse), consent policies (FHIR
//! consentpolicycodes, HL7 v3 ActCode privacy laws, and onedoor's codes for laws without an HL7 code),
//! DS4P security labels, and consent actions. An unknown code in a Consent is an error, never a guess.

/// HL7 v3 ActReason code system (PurposeOfUse, privacy laws).
pub const V3_ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// HL7 v3 ActCode code system (sensitivity labels, privacy laws).
pub const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// HL7 v3 Confidentiality code system (N, R, V...).
pub const V3_CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
/// HL7 v3 ObservationValue code system (REDACTED).
pub const V3_OBSERVATION_VALUE: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
/// onedoor's own codes, for laws and record kinds HL7 has no code for (FERPA, state law, education record).
pub const ONEDOOR_CODES: &str = "urn:onedoor:codes";

/// Purposes of use a request or a provision may name (HL7 v3 PurposeOfUse).
pub const PURPOSES: &[&str] = &[
    "TREAT",
    "ETREAT",
    "HPAYMT",
    "HOPERAT",
    "CAREMGT",
    "COC",
    "PUBHLTH",
    "HRESCH",
    "PATRQT",
    "FAMRQT",
    "PWATRNY",
    "SUPNWK",
    "SYSDEV",
    "HLEGAL",
    "HSYSADMIN",
    "HMARKT",
    "TRAIN",
    "CLMATTCH",
    "COVERAGE",
    "BTG",
    "ERTREAT",
];

/// Consent policies (`Consent.policyRule` and `Consent.policy.uri` codes).
pub const POLICIES: &[&str] = &[
    // HL7 v3 ActCode privacy laws and policies.
    "42CFRPart2",
    "CommonRule",
    "HIPAANOPP",
    "HIPAAPsyNotes",
    "HIPAASelfPay",
    "Title38Section7332",
    // FHIR consentpolicycodes.
    "hipaa-auth",
    "hipaa-npp",
    "hipaa-restrictions",
    "hipaa-research",
    "hipaa-self-pay",
    "cric",
    // onedoor codes (urn:onedoor:codes).
    "FERPA",
    "HIPAA",
    "STATE",
];

/// DS4P labels onedoor reads from `meta.security`: confidentiality and sensitivity.
pub const LABELS: &[&str] = &[
    "U", "L", "M", "N", "R", "V", // confidentiality
    "ETH", "PSY", "MH", "HIV", "SDV", "SEX", "STD", "SUD", "GDIS", "SCA", "SICKLE", "TBOO", "ADOL",
    "DEMO", "EDU", "REDACTED", "BH", "ETHUD", "OPIOIDUD", "ALCUD", "DRGUD", "PSYTHPN",
];

/// Sensitivity labels of data governed by 42 CFR Part 2 (substance use disorder records): what a decision
/// lists as withheld when Part 2 data may not leave. Every code [`is_part2`] accepts is covered.
pub const PART2_LABELS: &[&str] = &["ETH", "SUD"];

/// Specialisations of the v3 ActCode sensitivity codes (InformationSensitivityPolicy), read as "a label
/// `general` covers data labelled `specific`". A deny of the general code withholds the specific ones; a
/// permit limited to the general code covers them too. Every code covers itself.
pub const SENSITIVITY_HIERARCHY: &[(&str, &[&str])] = &[
    // behavioural health covers substance use, mental health and psychiatry.
    (
        "BH",
        &[
            "ETH", "SUD", "ETHUD", "OPIOIDUD", "ALCUD", "DRGUD", "MH", "PSY", "PSYTHPN",
        ],
    ),
    // substance abuse information (42 CFR Part 2): every substance use disorder code.
    ("ETH", &["SUD", "ETHUD", "OPIOIDUD", "ALCUD", "DRGUD"]),
    ("SUD", &["ETH", "ETHUD", "OPIOIDUD", "ALCUD", "DRGUD"]),
    // mental health and psychiatry are read as covering each other (the cautious reading: a deny of either
    // withholds both), and both cover psychotherapy notes.
    ("MH", &["PSY", "PSYTHPN"]),
    ("PSY", &["MH", "PSYTHPN"]),
    // HIV/AIDS is a sexually transmitted disease sensitivity.
    ("STD", &["HIV"]),
];

/// Whether a provision's sensitivity label `general` covers a resource's label `specific` (same system).
pub fn sensitivity_covers(general: &str, specific: &str) -> bool {
    general == specific
        || SENSITIVITY_HIERARCHY
            .iter()
            .any(|(g, specifics)| *g == general && specifics.contains(&specific))
}

/// Confidentiality codes in order (v3 Confidentiality): U < L < M < N < R < V.
pub const CONFIDENTIALITY_ORDER: &[&str] = &["U", "L", "M", "N", "R", "V"];

/// Rank of a confidentiality code.
pub fn confidentiality_rank(code: &str) -> Option<usize> {
    CONFIDENTIALITY_ORDER.iter().position(|c| *c == code)
}

/// The code system a label code belongs to: confidentiality codes to v3 Confidentiality, REDACTED to v3
/// ObservationValue, onedoor's own (EDU, DEMO) to `urn:onedoor:codes`, the rest to v3 ActCode.
pub fn label_system(code: &str) -> &'static str {
    match code {
        _ if confidentiality_rank(code).is_some() => V3_CONFIDENTIALITY,
        "REDACTED" => V3_OBSERVATION_VALUE,
        "EDU" | "DEMO" | "IO" => ONEDOOR_CODES,
        _ => V3_ACT_CODE,
    }
}

/// Whether a resource label (`system`, `code`) falls under a provision's label `code` (its system implied by
/// [`label_system`]). Confidentiality is ordered: a provision label `R` covers `R` and `V`. Sensitivity codes
/// follow [`SENSITIVITY_HIERARCHY`]. A resource label without a system is read by its code alone (a missing
/// system never lets data escape a deny); a label with another system is another code.
pub fn label_covers(provision: &str, system: Option<&str>, code: &str) -> bool {
    if system.is_some_and(|s| s != label_system(code)) {
        return false;
    }
    match (confidentiality_rank(provision), confidentiality_rank(code)) {
        (Some(p), Some(c)) => c >= p,
        (None, None) => sensitivity_covers(provision, code),
        _ => false,
    }
}

/// Whether a resource label is 42 CFR Part 2 data (ETH or any specialisation).
pub fn is_part2(system: Option<&str>, code: &str) -> bool {
    label_covers("ETH", system, code)
}

/// The obligation label attached to released Part 2 data: v3 ActCode NORDSCLCD, "no redisclosure without
/// consent directive" (the recipient must not redisclose it without the person's consent).
pub const REDISCLOSURE_OBLIGATION: &str = "NORDSCLCD";

/// Where the redisclosure notice text travels in a released Bundle: a `Bundle.meta.extension` with this url
/// and the notice as `valueString` (and the same extension on every released Part 2 resource's `meta`).
pub const NOTICE_EXTENSION: &str = "urn:onedoor:extension:redisclosure-notice";

/// v3 RoleCode relationships whose holder may consent for a minor by default: parents (natural, adoptive,
/// mother, father) and legal guardians. Step-, foster and other relations do not, unless configured.
pub const CUSTODIAL_ROLES: &[&str] = &[
    "PRN", "MTH", "FTH", "NPRN", "NMTH", "NFTH", "ADOPTP", "ADOPTF", "ADOPTM", "GUARD",
];

/// v3 RoleCode personal relationship codes (`_PersonalRelationshipRoleType` and the powers of attorney): what
/// `[consent] custodial_roles` may name.
pub const PERSONAL_RELATIONSHIPS: &[&str] = &[
    "FAMMEMB",
    "CHILD",
    "CHLDADOPT",
    "DAUADOPT",
    "SONADOPT",
    "CHLDFOST",
    "DAUFOST",
    "SONFOST",
    "DAUC",
    "DAU",
    "STPDAU",
    "NCHILD",
    "SONC",
    "SON",
    "STPSON",
    "STPCHLD",
    "EXT",
    "AUNT",
    "MAUNT",
    "PAUNT",
    "COUSN",
    "MCOUSN",
    "PCOUSN",
    "GGRPRN",
    "GGRFTH",
    "MGGRFTH",
    "PGGRFTH",
    "GGRMTH",
    "MGGRMTH",
    "PGGRMTH",
    "MGGRPRN",
    "PGGRPRN",
    "GRNDCHILD",
    "GRNDDAU",
    "GRNDSON",
    "GRPRN",
    "GRFTH",
    "MGRFTH",
    "PGRFTH",
    "GRMTH",
    "MGRMTH",
    "PGRMTH",
    "MGRPRN",
    "PGRPRN",
    "INLAW",
    "CHLDINLAW",
    "DAUINLAW",
    "SONINLAW",
    "PRNINLAW",
    "FTHINLAW",
    "MTHINLAW",
    "SIBINLAW",
    "BROINLAW",
    "SISINLAW",
    "NIENEPH",
    "NEPHEW",
    "NIECE",
    "UNCLE",
    "MUNCLE",
    "PUNCLE",
    "PRN",
    "ADOPTP",
    "ADOPTF",
    "ADOPTM",
    "FTH",
    "FTHFOST",
    "NFTH",
    "NFTHF",
    "STPFTH",
    "MTH",
    "GESTM",
    "MTHFOST",
    "NMTH",
    "NMTHF",
    "STPMTH",
    "NPRN",
    "PRNFOST",
    "STPPRN",
    "SIB",
    "BRO",
    "HBRO",
    "NBRO",
    "TWINBRO",
    "FTWINBRO",
    "ITWINBRO",
    "STPBRO",
    "HSIB",
    "HSIS",
    "NSIB",
    "NSIS",
    "TWINSIS",
    "FTWINSIS",
    "ITWINSIS",
    "TWIN",
    "FTWIN",
    "ITWIN",
    "SIS",
    "STPSIS",
    "STPSIB",
    "SIGOTHR",
    "DOMPART",
    "FMRSPS",
    "SPS",
    "HUSB",
    "WIFE",
    "FRND",
    "NBOR",
    "ONESELF",
    "ROOM",
    "GUARD",
    "POWATT",
    "DPOWATT",
    "HPOWATT",
    "SPOWATT",
];

/// Resource types that describe organizations and services, not people (public directory data): a reference
/// to one that the record does not hold points to no one's data and is kept as sent.
pub const DIRECTORY_TYPES: &[&str] = &[
    "Organization",
    "HealthcareService",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "Endpoint",
];

/// The v3 ParticipationType code system (`Consent.provision.actor.role`).
pub const V3_PARTICIPATION_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";

/// Actor roles that name who receives: information recipient, primary information recipient, referred to,
/// tracker. A provision with such actors applies only to a request whose recipient is one of them.
pub const RECIPIENT_ROLES: &[&str] = &["IRCP", "PRCP", "REFT", "TRC"];

/// Actor roles that name who holds or wrote the data: custodian, author, informant, referred by. A
/// provision with such actors applies only to a request whose source organization is one of them.
pub const SOURCE_ROLES: &[&str] = &["CST", "AUT", "INF", "REFB"];

/// The v3 RoleCode code system (RelatedPerson.relationship).
pub const V3_ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";

/// The FHIR resource-types code system (Consent.provision.class).
pub const RESOURCE_TYPES_SYSTEM: &str = "http://hl7.org/fhir/resource-types";

/// The consent scope that decides disclosures (consentscope).
pub const PRIVACY_SCOPE: &str = "patient-privacy";

/// consent-data-meaning codes.
pub const DATA_MEANINGS: &[&str] = &["instance", "related", "dependents", "authoredby"];

/// Actions a provision may name (consentaction).
pub const ACTIONS: &[&str] = &["collect", "access", "use", "disclose", "correct"];

/// The redisclosure notice that must accompany a 42 CFR Part 2 disclosure (42 CFR 2.32).
pub const PART2_NOTICE: &str = "This record which has been disclosed to you is protected by federal confidentiality rules (42 CFR part 2). \
The federal rules prohibit you from making any further disclosure of information in this record that identifies a patient as having or \
having had a substance use disorder either directly, by reference to publicly available information, or through verification of such \
identification by another person unless further disclosure is expressly permitted by the written consent of the individual whose \
information is being disclosed or as otherwise permitted by 42 CFR part 2. A general authorization for the release of medical or other \
information is NOT sufficient for this purpose (see 42 CFR 2.31). The federal rules restrict any use of the information to investigate \
or prosecute with regard to a crime any patient with a substance use disorder, except as provided at 42 CFR 2.12(c)(5) and 2.65.";

/// FHIR R4 resource type names (case-sensitive), the codes of `Consent.provision.class` in resource-types.
pub const RESOURCE_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

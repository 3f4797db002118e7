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
    "ETREAT",
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
    "DEMO", "EDU", "REDACTED",
];

/// Sensitivity labels of data governed by 42 CFR Part 2 (substance use disorder records).
pub const PART2_LABELS: &[&str] = &["ETH", "SUD"];

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

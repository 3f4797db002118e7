//! FHIR invariants the JSON schema cannot express, written as the FHIRPath of the FHIR R4 specification
//! (and of the SDOHCC profiles) and evaluated by the engine of [`super::fhirpath`]. The expressions are
//! compiled once, on first use; each element of a document is visited once and checked against the
//! invariants of its context:
//!
//! - every resource: dom-2, dom-3, dom-4, dom-5 (DomainResource: not Bundle, Binary, Parameters);
//! - per resource type: bdl-1..4, bdl-7, bdl-9..12 (Bundle), bdl-5, bdl-8 (Bundle.entry), pat-1
//!   (Patient.contact), org-1..3, prr-1 (ServiceRequest), inv-1 (Task), ppc-1..5 (Consent), con-1, con-2,
//!   con-4, con-5 (Condition), obs-3, obs-6, obs-7 (Observation), cpl-3 (CarePlan.activity), gol-1
//!   (Goal.target), sev-1 (AuditEvent.entity);
//! - per data type: ele-1 (every element), ext-1 (Extension), per-1 (Period), ref-1 (Reference), cpt-2
//!   (ContactPoint);
//! - per SDOHCC profile claimed in `meta.profile`: SDOH-Task-1..7 (TaskForPatient), SDOH-Con-1
//!   (Condition), SDOH-HCS-1, SDOH-HCS-2 (HealthcareService).
//!
//! Without a type model, data types are recognised from the JSON: a Period is an object under a key
//! `period` or `...Period`, a Reference an object whose `reference` is a string, an Extension an item of
//! `extension`/`modifierExtension`, a ContactPoint an item of `telecom`. Only error-level constraints
//! are checked (dom-6 and con-3 are warnings). SDOH-Con-2 needs a terminology server (`memberOf`).
//!
//! The pass/fail decision is always the FHIRPath one. For a few Bundle rules and per-1, a failure is then
//! located more precisely in code (which entry, which fullUrl), so the issue names the element at fault.

use super::fhirpath::{Env, Expression, ParseError};
use super::numbers;
use super::{Issue, IssueSource};
use crate::members::Members;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

/// Where an invariant applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Every resource but Bundle, Binary and Parameters.
    DomainResource,
    /// Resources of one type.
    Resource(&'static str),
    /// The items of one element of a resource type (`Bundle.entry`).
    Child(&'static str, &'static str),
    /// Every element (object) that is not a resource.
    Element,
    /// Items of `extension` / `modifierExtension`.
    Extension,
    /// Objects under `period` or `...Period`.
    Period,
    /// Objects whose `reference` is a string.
    Reference,
    /// Items of `telecom`.
    ContactPoint,
    /// Resources of a type claiming a profile (canonical URL, version ignored).
    Profile(&'static str, &'static str),
}

/// One invariant: its key, what it says, where it applies, its FHIRPath.
#[derive(Debug, Clone, Copy)]
pub struct Invariant {
    /// `bdl-7`, `per-1`...
    pub key: &'static str,
    /// The specification's human description.
    pub human: &'static str,
    /// Where it applies.
    pub context: Context,
    /// The FHIRPath expression, as published.
    pub expression: &'static str,
    /// The element the expression is about: without it the expression holds (a test checks it), so it
    /// is not evaluated (`contained` for dom-2..5).
    pub needs: Option<&'static str>,
    /// The same check written in Rust, used on an element (an object) instead of evaluating the FHIRPath:
    /// for an invariant checked on every element (ele-1). A test compares the two.
    pub direct: Option<DirectCheck>,
}

/// An invariant written in Rust over one element.
pub type DirectCheck = fn(&Map<String, Value>) -> bool;

const SDOHCC: &str = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/";
const SDOHCC_TASK_FOR_PATIENT: &str =
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForPatient";
const SDOHCC_CONDITION: &str =
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Condition";
const SDOHCC_HEALTHCARE_SERVICE: &str =
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-HealthcareService";

macro_rules! inv {
    ($key:literal, $context:expr, $human:literal, $expr:literal) => {
        Invariant {
            key: $key,
            human: $human,
            context: $context,
            expression: $expr,
            needs: None,
            direct: None,
        }
    };
    ($key:literal, $context:expr, $human:literal, $expr:literal, $needs:literal) => {
        Invariant {
            key: $key,
            human: $human,
            context: $context,
            expression: $expr,
            needs: Some($needs),
            direct: None,
        }
    };
}

use Context::*;

/// Every invariant checked, in the order issues are reported.
pub const INVARIANTS: &[Invariant] = &[
    Invariant {
        key: "ele-1",
        context: Element,
        human: "All FHIR elements must have a @value or children",
        expression: "hasValue() or (children().count() > id.count())",
        needs: None,
        direct: Some(element_has_children),
    },
    inv!(
        "ext-1",
        Extension,
        "Must have either extensions or value[x], not both",
        "extension.exists() != value.exists()"
    ),
    inv!(
        "per-1",
        Period,
        "If present, start SHALL have a lower value than end",
        "start.hasValue().not() or end.hasValue().not() or (start <= end)"
    ),
    inv!(
        "ref-1",
        Reference,
        "SHALL have a contained resource if a local reference is provided",
        "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))"
    ),
    inv!(
        "cpt-2",
        ContactPoint,
        "A system is required if a value is provided.",
        "value.empty() or system.exists()",
        "value"
    ),
    inv!(
        "dom-2",
        DomainResource,
        "If the resource is contained in another resource, it SHALL NOT contain nested Resources",
        "contained.contained.empty()",
        "contained"
    ),
    inv!(
        "dom-3",
        DomainResource,
        "If the resource is contained in another resource, it SHALL be referred to from elsewhere in the resource or SHALL refer to the containing resource",
        "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) | %resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#').exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()",
        "contained"
    ),
    inv!(
        "dom-4",
        DomainResource,
        "If a resource is contained in another resource, it SHALL NOT have a meta.versionId or a meta.lastUpdated",
        "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()",
        "contained"
    ),
    inv!(
        "dom-5",
        DomainResource,
        "If a resource is contained in another resource, it SHALL NOT have a security label",
        "contained.meta.security.empty()",
        "contained"
    ),
    inv!(
        "bdl-1",
        Resource("Bundle"),
        "total only when a search or history",
        "total.empty() or (type = 'searchset') or (type = 'history')",
        "total"
    ),
    inv!(
        "bdl-2",
        Resource("Bundle"),
        "entry.search only when a search",
        "entry.search.empty() or (type = 'searchset')",
        "entry"
    ),
    inv!(
        "bdl-3",
        Resource("Bundle"),
        "entry.request mandatory for batch/transaction/history, otherwise prohibited",
        "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction' or %resource.type = 'history'))",
        "entry"
    ),
    inv!(
        "bdl-4",
        Resource("Bundle"),
        "entry.response mandatory for batch-response/transaction-response/history, otherwise prohibited",
        "entry.all(response.exists() = (%resource.type = 'batch-response' or %resource.type = 'transaction-response' or %resource.type = 'history'))",
        "entry"
    ),
    inv!(
        "bdl-7",
        Resource("Bundle"),
        "FullUrl must be unique in a bundle, or else entries with the same fullUrl must have different meta.versionId (except in history bundles)",
        "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
        "entry"
    ),
    inv!(
        "bdl-9",
        Resource("Bundle"),
        "A document must have an identifier with a system and a value",
        "type = 'document' implies (identifier.system.exists() and identifier.value.exists())"
    ),
    inv!(
        "bdl-10",
        Resource("Bundle"),
        "A document must have a date",
        "type = 'document' implies (timestamp.hasValue())"
    ),
    inv!(
        "bdl-11",
        Resource("Bundle"),
        "A document must have a Composition as the first resource",
        "type = 'document' implies entry.first().resource.is(Composition)"
    ),
    inv!(
        "bdl-12",
        Resource("Bundle"),
        "A message must have a MessageHeader as the first resource",
        "type = 'message' implies entry.first().resource.is(MessageHeader)"
    ),
    inv!(
        "bdl-5",
        Child("Bundle", "entry"),
        "must be a resource unless there's a request or response",
        "resource.exists() or request.exists() or response.exists()"
    ),
    inv!(
        "bdl-8",
        Child("Bundle", "entry"),
        "fullUrl cannot be a version specific reference",
        "fullUrl.contains('/_history/').not()"
    ),
    inv!(
        "pat-1",
        Child("Patient", "contact"),
        "SHALL at least contain a contact's details or a reference to an organization",
        "name.exists() or telecom.exists() or address.exists() or organization.exists()"
    ),
    inv!(
        "org-1",
        Resource("Organization"),
        "The organization SHALL at least have a name or an identifier, and possibly more than one",
        "(identifier.count() + name.count()) > 0"
    ),
    inv!(
        "org-2",
        Child("Organization", "address"),
        "An address of an organization can never be of use 'home'",
        "where(use = 'home').empty()"
    ),
    inv!(
        "org-3",
        Child("Organization", "telecom"),
        "The telecom of an organization can never be of use 'home'",
        "where(use = 'home').empty()"
    ),
    inv!(
        "prr-1",
        Resource("ServiceRequest"),
        "orderDetail SHALL only be present if code is present",
        "orderDetail.empty() or code.exists()",
        "orderDetail"
    ),
    inv!(
        "inv-1",
        Resource("Task"),
        "Last modified date must be greater than or equal to authored-on date.",
        "lastModified.exists().not() or authoredOn.exists().not() or lastModified >= authoredOn",
        "lastModified"
    ),
    inv!(
        "ppc-1",
        Resource("Consent"),
        "Either a Policy or PolicyRule",
        "policy.exists() or policyRule.exists()"
    ),
    inv!(
        "ppc-2",
        Resource("Consent"),
        "IF Scope=privacy, there must be a patient",
        "patient.exists() or scope.coding.where(system='something' and code='patient-privacy').exists().not()",
        "scope"
    ),
    inv!(
        "ppc-3",
        Resource("Consent"),
        "IF Scope=research, there must be a patient",
        "patient.exists() or scope.coding.where(system='something' and code='research').exists().not()",
        "scope"
    ),
    inv!(
        "ppc-4",
        Resource("Consent"),
        "IF Scope=adr, there must be a patient",
        "patient.exists() or scope.coding.where(system='something' and code='adr').exists().not()",
        "scope"
    ),
    inv!(
        "ppc-5",
        Resource("Consent"),
        "IF Scope=treatment, there must be a patient",
        "patient.exists() or scope.coding.where(system='something' and code='treatment').exists().not()",
        "scope"
    ),
    inv!(
        "con-1",
        Child("Condition", "stage"),
        "Stage SHALL have summary or assessment",
        "summary.exists() or assessment.exists()"
    ),
    inv!(
        "con-2",
        Child("Condition", "evidence"),
        "evidence SHALL have code or details",
        "code.exists() or detail.exists()"
    ),
    inv!(
        "con-4",
        Resource("Condition"),
        "If condition is abated, then clinicalStatus must be either inactive, resolved, or remission",
        "abatement.empty() or clinicalStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/condition-clinical' and (code='resolved' or code='remission' or code='inactive')).exists()"
    ),
    inv!(
        "con-5",
        Resource("Condition"),
        "Condition.clinicalStatus SHALL NOT be present if verification Status is entered-in-error",
        "verificationStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/condition-ver-status' and code='entered-in-error').empty() or clinicalStatus.empty()"
    ),
    inv!(
        "obs-3",
        Child("Observation", "referenceRange"),
        "Must have at least a low or a high or text",
        "low.exists() or high.exists() or text.exists()"
    ),
    inv!(
        "obs-6",
        Resource("Observation"),
        "dataAbsentReason SHALL only be present if Observation.value[x] is not present",
        "dataAbsentReason.empty() or value.empty()",
        "dataAbsentReason"
    ),
    inv!(
        "obs-7",
        Resource("Observation"),
        "If Observation.code is the same as an Observation.component.code then the value element associated with the code SHALL NOT be present",
        "value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()"
    ),
    inv!(
        "cpl-3",
        Child("CarePlan", "activity"),
        "Provide a reference or detail, not both",
        "detail.empty() or reference.empty()"
    ),
    inv!(
        "gol-1",
        Child("Goal", "target"),
        "Goal.target.measure is required if Goal.target.detail is populated",
        "(detail.exists() and measure.exists()) or detail.exists().not()"
    ),
    inv!(
        "sev-1",
        Child("AuditEvent", "entity"),
        "Either a name or a query (NOT both)",
        "name.empty() or query.empty()"
    ),
    inv!(
        "SDOH-Task-1",
        Profile("Task", SDOHCC_TASK_FOR_PATIENT),
        "If Task.code is 'complete-questionnaire', then exactly one Task.input of either 'questionnaire', 'questionnaire-pdf', or 'questionnaire-url' is required and Task.input 'questionnaire-category' is required.",
        "code.coding.where(system='http://hl7.org/fhir/uv/sdc/CodeSystem/temp' and code='complete-questionnaire').exists() implies ((input.type.coding.where(system='http://hl7.org/fhir/uv/sdc/CodeSystem/temp' and code='questionnaire').exists() xor input.type.coding.where(system='http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes' and code='questionnaire-pdf').exists() xor input.type.coding.where(system='http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes' and code='questionnaire-url').exists()) and input.type.coding.where(system='http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes' and code='questionnaire-category').exists())"
    ),
    inv!(
        "SDOH-Task-2",
        Profile("Task", SDOHCC_TASK_FOR_PATIENT),
        "If Task.code is 'general-information', then Task.description is required and Task.output, if present, must be 'general-information-response'.",
        "code.coding.where(system='http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes' and code='general-information').exists() implies (description.exists() and (output.empty() or output.type.coding.all(system='http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes' and code='general-information-response').exists()))"
    ),
    inv!(
        "SDOH-Task-3",
        Profile("Task", SDOHCC_TASK_FOR_PATIENT),
        "If Task.code is 'review-material', then Task.focus of DocumentReference is required.",
        "code.coding.where(system='http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes' and code='review-material').exists() implies focus.resolve().all($this is DocumentReference)"
    ),
    inv!(
        "SDOH-Task-4",
        Profile("Task", SDOHCC_TASK_FOR_PATIENT),
        "If Task.code is 'make-contact', then Task.input of at least one 'contact-entity' is required.",
        "code.coding.where(system='http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes' and code='make-contact').exists() implies input.type.coding.where(system='http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes' and code='contact-entity').exists()"
    ),
    inv!(
        "SDOH-Task-5",
        Profile("Task", SDOHCC_TASK_FOR_PATIENT),
        "If Task.input is 'questionnaire', then Task.output, if present, must be 'questionnaire-response'.",
        "input.type.coding.where(system='http://hl7.org/fhir/uv/sdc/CodeSystem/temp' and code='questionnaire').exists() implies (output.type.coding.where(system='http://hl7.org/fhir/uv/sdc/CodeSystem/temp' and code='questionnaire-response').exists() or output.empty())"
    ),
    inv!(
        "SDOH-Task-6",
        Profile("Task", SDOHCC_TASK_FOR_PATIENT),
        "If Task.input is 'questionnaire-pdf', then Task.output, if present, must be 'questionnaire-pdf-completed'.",
        "input.type.coding.where(system='http://hl7.org/fhir/uv/sdc/CodeSystem/temp' and code='questionnaire-pdf').exists() implies (output.type.coding.where(system='http://hl7.org/fhir/uv/sdc/CodeSystem/temp' and code='questionnaire-pdf-completed').exists() or output.empty())"
    ),
    inv!(
        "SDOH-Task-7",
        Profile("Task", SDOHCC_TASK_FOR_PATIENT),
        "If Task.code is 'make-contact', then Task.description is required and either Task.output is absent or Task.output must be 'chosen-contact'.",
        "code.coding.where(system='http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes' and code='make-contact').exists() implies (description.exists() and (output.empty() or output.type.coding.all(system='http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes' and code='chosen-contact').exists()))"
    ),
    inv!(
        "SDOH-Con-1",
        Profile("Condition", SDOHCC_CONDITION),
        "Can only have a max of one asserter.",
        "extension('http://hl7.org/fhir/us/sdoh-clinicalcare/extension-Condition.asserter').count()+asserter.count()<=1"
    ),
    inv!(
        "SDOH-HCS-1",
        Profile("HealthcareService", SDOHCC_HEALTHCARE_SERVICE),
        "At least one Healthcare.category SHALL be sdoh",
        "category.where(coding.where(system = 'http://hl7.org/fhir/us/core/CodeSystem/us-core-category' and code='sdoh').exists()).exists()"
    ),
    inv!(
        "SDOH-HCS-2",
        Profile("HealthcareService", SDOHCC_HEALTHCARE_SERVICE),
        "If HealthcareService.code is 'program-support', then one of HealthcareService.program or HealthcareService.characteristic is required.",
        "code.coding.where(system='http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes' and code='program-support').exists() implies ((program.exists()) or (characteristic.exists()))"
    ),
];

/// The compiled invariants, bucketed by context.
struct Compiled {
    expressions: Vec<Result<Expression, ParseError>>,
    domain: Vec<usize>,
    by_resource: HashMap<&'static str, Vec<usize>>,
    /// Per resource type, the invariants of its child elements (`Bundle` → `entry` → bdl-5, bdl-8).
    by_child: HashMap<&'static str, Vec<(&'static str, Vec<usize>)>>,
    element: Vec<usize>,
    extension: Vec<usize>,
    period: Vec<usize>,
    reference: Vec<usize>,
    contact_point: Vec<usize>,
    profiles: Vec<(&'static str, &'static str, usize)>,
}

/// Compile the invariants now (see [`super::prepare`]).
pub(super) fn prepare() {
    compiled();
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let mut c = Compiled {
            expressions: INVARIANTS
                .iter()
                .map(|i| Expression::compile(i.expression))
                .collect(),
            domain: Vec::new(),
            by_resource: HashMap::new(),
            by_child: HashMap::new(),
            element: Vec::new(),
            extension: Vec::new(),
            period: Vec::new(),
            reference: Vec::new(),
            contact_point: Vec::new(),
            profiles: Vec::new(),
        };
        for (index, invariant) in INVARIANTS.iter().enumerate() {
            match invariant.context {
                DomainResource => c.domain.push(index),
                Resource(kind) => c.by_resource.entry(kind).or_default().push(index),
                Child(kind, key) => add_child(&mut c.by_child, kind, key, index),
                Element => c.element.push(index),
                Extension => c.extension.push(index),
                Period => c.period.push(index),
                Reference => c.reference.push(index),
                ContactPoint => c.contact_point.push(index),
                Profile(kind, url) => c.profiles.push((kind, url, index)),
            }
        }
        c
    })
}

fn add_child(
    by_child: &mut HashMap<&'static str, Vec<(&'static str, Vec<usize>)>>,
    kind: &'static str,
    key: &'static str,
    index: usize,
) {
    let list = by_child.entry(kind).or_default();
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, indexes)) => indexes.push(index),
        None => list.push((key, vec![index])),
    }
}

/// Whether every invariant compiles (a test checks it; a failure is also reported as an issue).
pub fn compile_errors() -> Vec<(&'static str, ParseError)> {
    INVARIANTS
        .iter()
        .zip(&compiled().expressions)
        .filter_map(|(i, e)| e.as_ref().err().map(|e| (i.key, e.clone())))
        .collect()
}

/// Every invariant violation in `resource` (contained resources and Bundle entries included, nested
/// Bundles too), with JSON paths under `prefix`.
pub fn check(resource: &Value, prefix: &str) -> Vec<Issue> {
    let mut walker = Walker {
        compiled: compiled(),
        path: Vec::new(),
        issues: Vec::new(),
        prefix,
    };
    if let Value::Object(map) = resource {
        let scope = Scope {
            resource,
            root: resource,
            bundle: None,
            kind: "",
            base: 0,
        };
        walker.resource(map, scope);
    }
    walker.issues
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The resource being walked, its container and the Bundle it is in.
#[derive(Clone, Copy)]
struct Scope<'a> {
    resource: &'a Value,
    root: &'a Value,
    bundle: Option<&'a Value>,
    /// The resource's type and where its path starts in the walker's path (for number types).
    kind: &'a str,
    base: usize,
}

struct Walker<'a, 'p> {
    compiled: &'static Compiled,
    path: Vec<Seg<'a>>,
    issues: Vec<Issue>,
    prefix: &'p str,
}

impl<'a> Walker<'a, '_> {
    fn pointer(&self) -> String {
        let mut out = self.prefix.to_owned();
        for seg in &self.path {
            match seg {
                Seg::Key(key) => {
                    out.push('/');
                    out.push_str(&key.replace('~', "~0").replace('/', "~1"));
                }
                Seg::Index(i) => {
                    let _ = write!(out, "/{i}");
                }
            }
        }
        out
    }

    fn resource(&mut self, map: &'a Map<String, Value>, scope: Scope<'a>) {
        let kind = map
            .member("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let scope = Scope { kind, ..scope };
        let node = scope.resource;
        if !matches!(kind, "Bundle" | "Binary" | "Parameters") {
            self.run_all(&self.compiled.domain, node, scope);
        }
        if let Some(list) = self.compiled.by_resource.get(kind) {
            self.run_all(list, node, scope);
        }
        for &(profile_kind, url, index) in &self.compiled.profiles {
            if profile_kind == kind && claims(map, url) {
                self.run(index, node, scope);
            }
        }
        let bundle = if kind == "Bundle" {
            Some(node)
        } else {
            scope.bundle
        };
        let children = self.compiled.by_child.get(kind);
        for (key, value) in map {
            self.path.push(Seg::Key(key));
            let child = children.and_then(|c| c.iter().find(|(k, _)| k == key).map(|(_, v)| v));
            self.value(value, key, child, Scope { bundle, ..scope });
            self.path.pop();
        }
    }

    /// A value under `key`: arrays item by item; objects as elements or resources.
    fn value(
        &mut self,
        value: &'a Value,
        key: &'a str,
        child: Option<&Vec<usize>>,
        scope: Scope<'a>,
    ) {
        match value {
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.path.push(Seg::Index(index));
                    match item {
                        Value::Number(number) => self.number(number, scope),
                        _ => self.object(item, key, child, scope),
                    }
                    self.path.pop();
                }
            }
            Value::Number(number) => self.number(number, scope),
            _ => self.object(value, key, child, scope),
        }
    }

    fn object(
        &mut self,
        value: &'a Value,
        key: &'a str,
        child: Option<&Vec<usize>>,
        scope: Scope<'a>,
    ) {
        let Value::Object(map) = value else {
            return;
        };
        if map.member("resourceType").is_some_and(Value::is_string) {
            let root = if key == "contained" {
                scope.root
            } else {
                value
            };
            let inner = Scope {
                resource: value,
                root,
                bundle: scope.bundle,
                kind: "",
                base: self.path.len(),
            };
            self.resource(map, inner);
            return;
        }
        self.element(map, value, key, child, scope);
        for (inner_key, inner) in map {
            self.path.push(Seg::Key(inner_key));
            self.value(inner, inner_key, None, scope);
            self.path.pop();
        }
    }

    fn element(
        &mut self,
        map: &'a Map<String, Value>,
        value: &'a Value,
        key: &str,
        child: Option<&Vec<usize>>,
        scope: Scope<'a>,
    ) {
        let c = self.compiled;
        self.run_all(&c.element, value, scope);
        if let Some(list) = child {
            self.run_all(list, value, scope);
        }
        if key == "extension" || key == "modifierExtension" {
            self.run_all(&c.extension, value, scope);
        }
        if key == "period" || key.ends_with("Period") {
            self.run_all(&c.period, value, scope);
        }
        if map.member("reference").is_some_and(Value::is_string) {
            self.run_all(&c.reference, value, scope);
        }
        if key == "telecom" {
            self.run_all(&c.contact_point, value, scope);
        }
    }

    /// A number where FHIR wants an integer type must be one it can hold (see [`super::numbers`]).
    fn number(&mut self, number: &serde_json::Number, scope: Scope<'a>) {
        let names: Vec<&str> = self.path[scope.base.min(self.path.len())..]
            .iter()
            .filter_map(|seg| match seg {
                Seg::Key(key) => Some(*key),
                Seg::Index(_) => None,
            })
            .collect();
        let Some(kind) = numbers::integer_type(scope.kind, &names) else {
            return;
        };
        if let Some(message) = numbers::problem(kind, number.as_str()) {
            let path = self.pointer();
            self.issues.push(Issue {
                path,
                message,
                source: IssueSource::Schema,
            });
        }
    }

    fn run_all(&mut self, list: &[usize], node: &'a Value, scope: Scope<'a>) {
        for &index in list {
            self.run(index, node, scope);
        }
    }

    fn run(&mut self, index: usize, node: &'a Value, scope: Scope<'a>) {
        let invariant = &INVARIANTS[index];
        if let Some(needed) = invariant.needs
            && node.member(needed).is_none()
        {
            return;
        }
        let env = Env {
            resource: scope.resource,
            root_resource: scope.root,
            bundle: scope.bundle,
            context: node,
        };
        let outcome = match (&self.compiled.expressions[index], invariant.direct, node) {
            (Ok(_), Some(direct), Value::Object(map)) => Ok(Some(direct(map))),
            (Ok(expression), _, _) => expression.check(node, env),
            (Err(error), _, _) => {
                let message = format!("{}: cannot be checked: {error}", invariant.key);
                self.push(self.pointer(), message);
                return;
            }
        };
        match outcome {
            Ok(Some(false)) => self.fail(invariant, node),
            Ok(_) => {}
            Err(error) => {
                let message = format!(
                    "{}: {} (the element cannot be evaluated: {error})",
                    invariant.key, invariant.human
                );
                self.push(self.pointer(), message);
            }
        }
    }

    fn push(&mut self, path: String, message: String) {
        self.issues.push(Issue {
            path,
            message,
            source: IssueSource::Invariant,
        });
    }

    /// Report a failed invariant, located at the element at fault where code can tell.
    fn fail(&mut self, invariant: &Invariant, node: &Value) {
        let here = self.pointer();
        let located = locate(invariant.key, node);
        if located.is_empty() {
            self.push(
                here.clone(),
                format!("{}: {}", invariant.key, invariant.human),
            );
        }
        for (suffix, message) in located {
            self.push(
                format!("{here}{suffix}"),
                format!("{}: {message}", invariant.key),
            );
        }
    }
}

/// ele-1, `hasValue() or (children().count() > id.count())`, counted directly: it is checked on every
/// element, and evaluating its FHIRPath builds the element's children as a collection each time. The
/// counting is the FHIRPath engine's (`children()` leaves out `resourceType` and a `_name` whose `name` is
/// there; a list counts its items that are not null; a missing `id` looks for a choice element `id[X]`);
/// `tests::ele_1_counted_directly_agrees_with_its_fhirpath` compares the two.
fn element_has_children(map: &Map<String, Value>) -> bool {
    let flat = |value: &Value| match value {
        Value::Array(items) => items.iter().filter(|v| !v.is_null()).count(),
        Value::Null => 0,
        _ => 1,
    };
    let children: usize = map
        .iter()
        .filter(|(key, _)| *key != "resourceType")
        .filter(|(key, _)| {
            key.strip_prefix('_')
                .is_none_or(|base| !map.contains_key(base))
        })
        .map(|(_, value)| flat(value))
        .sum();
    let ids: usize = match map.member("id") {
        Some(id) => flat(id),
        None => map
            .iter()
            .filter(|(key, _)| {
                key.len() > 2
                    && key.starts_with("id")
                    && key[2..].starts_with(|c: char| c.is_ascii_uppercase())
            })
            .map(|(_, value)| flat(value))
            .sum(),
    };
    children > ids
}

fn claims(map: &Map<String, Value>, url: &str) -> bool {
    debug_assert!(url.starts_with(SDOHCC));
    map.member("meta")
        .and_then(|m| m.member("profile"))
        .and_then(Value::as_array)
        .is_some_and(|profiles| {
            profiles
                .iter()
                .filter_map(Value::as_str)
                .any(|p| p.split('|').next() == Some(url))
        })
}

/// Where inside the failing element the fault is, with a message naming it: `(pointer suffix, message)`.
/// Empty when the element itself is the place.
fn locate(key: &str, node: &Value) -> Vec<(String, String)> {
    match key {
        "per-1" => {
            let text = |k: &str| node.get(k).and_then(Value::as_str).unwrap_or_default();
            vec![(
                "/end".into(),
                format!(
                    "impossible period: it ends ({}) before it starts ({}) (expected end ≥ start)",
                    text("end"),
                    text("start")
                ),
            )]
        }
        "bdl-2" | "bdl-3" | "bdl-4" => entries_at_fault(key, node),
        "bdl-7" => duplicate_full_urls(node),
        _ => Vec::new(),
    }
}

fn entries(bundle: &Value) -> &[Value] {
    bundle
        .member("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn entries_at_fault(key: &str, bundle: &Value) -> Vec<(String, String)> {
    let kind = bundle
        .member("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (element, wanted, rule) = match key {
        "bdl-2" => (
            "search",
            kind == "searchset",
            "entry.search only when a search",
        ),
        "bdl-3" => (
            "request",
            matches!(kind, "batch" | "transaction" | "history"),
            "entry.request mandatory for batch/transaction/history, otherwise prohibited",
        ),
        _ => (
            "response",
            matches!(kind, "batch-response" | "transaction-response" | "history"),
            "entry.response mandatory for batch-response/transaction-response/history, otherwise prohibited",
        ),
    };
    entries(bundle)
        .iter()
        .enumerate()
        .filter(|(_, entry)| {
            let present = entry.get(element).is_some();
            if key == "bdl-2" {
                present && !wanted
            } else {
                present != wanted
            }
        })
        .map(|(index, _)| {
            (
                format!("/entry/{index}/{element}"),
                format!("{rule} (this Bundle is a {kind})"),
            )
        })
        .collect()
}

fn duplicate_full_urls(bundle: &Value) -> Vec<(String, String)> {
    let mut seen: HashMap<(&str, Option<&str>), usize> = HashMap::new();
    let mut out = Vec::new();
    for (index, entry) in entries(bundle).iter().enumerate() {
        let Some(full_url) = entry.member("fullUrl").and_then(Value::as_str) else {
            continue;
        };
        let version = entry
            .at(&["resource", "meta", "versionId"])
            .and_then(Value::as_str);
        if let Some(first) = seen.insert((full_url, version), index) {
            out.push((
                format!("/entry/{index}/fullUrl"),
                format!(
                    "fullUrl '{full_url}' is also the fullUrl of entry {first} (expected each fullUrl once in a Bundle, unless the versions differ)"
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ele_1_counted_directly_agrees_with_its_fhirpath() {
        use crate::validation::fhirpath::{Env, Expression};
        let ele_1 = Expression::compile(INVARIANTS[0].expression).unwrap();
        assert_eq!(INVARIANTS[0].key, "ele-1");
        let counted = INVARIANTS[0].direct.unwrap();
        let values = [
            json!(null),
            json!(""),
            json!("x"),
            json!(0),
            json!(false),
            json!([]),
            json!([null]),
            json!([null, "a"]),
            json!(["a", "b"]),
            json!({}),
            json!({"a": null}),
        ];
        let keys = [
            "id",
            "_id",
            "idRef",
            "ida",
            "resourceType",
            "value",
            "_value",
            "extension",
            "_given",
        ];
        let mut checked = 0;
        // Every object of up to three of these keys, each with each of these values.
        for a in 0..keys.len() {
            for b in a..keys.len() {
                for c in b..keys.len() {
                    for (i, value) in values.iter().enumerate() {
                        let mut map = Map::new();
                        map.insert(keys[a].to_owned(), value.clone());
                        map.insert(keys[b].to_owned(), values[(i + 3) % values.len()].clone());
                        map.insert(keys[c].to_owned(), values[(i + 7) % values.len()].clone());
                        let node = Value::Object(map);
                        let by_fhirpath = ele_1.check(&node, Env::of(&node)).unwrap();
                        let direct = node.as_object().map(counted);
                        assert_eq!(direct, by_fhirpath, "{node}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000);
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn every_invariant_compiles() {
        assert_eq!(compile_errors(), Vec::new());
    }

    #[test]
    fn an_invariant_skipped_without_its_element_holds_without_it() {
        for (invariant, expression) in INVARIANTS.iter().zip(&compiled().expressions) {
            let (Some(_), Ok(expression)) = (invariant.needs, expression) else {
                continue;
            };
            let bare = json!({"resourceType": "Bundle", "type": "collection"});
            let outcome = expression.check(&bare, Env::of(&bare));
            assert_ne!(outcome, Ok(Some(false)), "{}", invariant.key);
        }
    }

    #[test]
    fn a_period_ending_before_it_starts_breaks_per_1() {
        let encounter = json!({"resourceType": "Encounter", "period": {"start": "2024-02-01", "end": "2024-01-15"}});
        let issues = check(&encounter, "");
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].path, "/period/end");
        assert!(issues[0].message.starts_with("per-1: impossible period"));
        for (start, end) in [
            ("2024-02-01", "2024-02-01"),
            ("2024-02", "2024-02-15"),
            ("2024-02-01T10:00:00+02:00", "2024-02-01T09:00:00Z"),
            ("2024-02-01", "2024-02-01T00:00:00Z"),
        ] {
            let ok = json!({"resourceType": "Encounter", "period": {"start": start, "end": end}});
            assert!(check(&ok, "").is_empty(), "{start} .. {end}");
        }
        let instants = json!({"resourceType": "Encounter", "period": {"start": "2024-02-01T10:00:00Z", "end": "2024-02-01T11:00:00+02:00"}});
        assert_eq!(check(&instants, "").len(), 1);
    }

    #[test]
    fn the_same_full_url_twice_breaks_bdl_7() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}, "request": {"method": "PUT", "url": "Patient/1"}},
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}, "request": {"method": "PUT", "url": "Patient/1"}},
            {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Patient"}}
        ]});
        let issues = check(&bundle, "");
        let messages: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
        assert!(
            issues
                .iter()
                .any(|i| i.path == "/entry/1/fullUrl" && i.message.starts_with("bdl-7")),
            "{messages:?}"
        );
        assert!(
            issues
                .iter()
                .any(|i| i.path == "/entry/2/request" && i.message.starts_with("bdl-3")),
            "{messages:?}"
        );
        assert_eq!(issues.len(), 2, "{messages:?}");
    }

    #[test]
    fn paths_of_nested_elements_are_json_pointers() {
        let patient =
            json!({"resourceType": "Patient", "contact": [{"gender": "male"}, {"name": {}}]});
        let issues = check(&patient, "/entry/3/resource");
        let found: Vec<(&str, &str)> = issues
            .iter()
            .map(|i| (i.path.as_str(), &i.message[..5]))
            .collect();
        assert_eq!(
            found,
            vec![
                ("/entry/3/resource/contact/0", "pat-1"),
                ("/entry/3/resource/contact/1/name", "ele-1"),
            ]
        );
    }
}

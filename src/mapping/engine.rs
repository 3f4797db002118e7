//! Compiling and evaluating a mapping: MiniJinja expressions evaluated against each source record, the
//! project's filters and functions, and the element rules that write FHIR resources.
//!
//! Filters and functions available to expressions:
//! - `value | code('table')`: the Coding (`{system, code, display}`) a source code maps to in
//!   `codes/table.csv`; an unknown code is an error naming the table and the codes it knows.
//! - `value | lookup('table')`: the same Coding, or nothing when the table has no such code (optional
//!   mappings such as security labels by need).
//! - `value | date`, `value | date('%m/%d/%Y')`: a FHIR date (tolerant, or with an explicit format).
//! - `value | datetime`: a FHIR dateTime.
//! - `reference('Patient', id)`, `fhir_id('Patient', id)`: the derived reference / id of another resource;
//!   `references('Location', ids)`: a list of references, one per id.
//! - `now()`: the conversion time (fixed per run; conformance cases fix it).
//! - `source_system`: the mapping's (or the configuration's) source system URI.
//!
//! An empty result leaves the element out; `required = true` turns an empty result into a rejection.

use super::codes::{CodeTable, CodeTables};
use super::dates::{self, DateQuirk};
use super::direct::{self, Direct, Stop};
use super::model::{DateOrder, MappingFile, ResourceMap, Rule, line_of};
use super::path::{Cursor, TargetPath, prune};
use super::reuse::{Inputs, Lookup, Product, ReuseMemo};
use crate::canonical::ids;
use crate::record::{Position, QuirkLog, RecordError, SourceRecord};
use crate::validation::FhirSchema;
use minijinja::{
    Environment, Error, ErrorKind, Expression, UndefinedBehavior, Value as JinjaValue,
};
use serde_json::{Map, Value, json};
use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use toml::Spanned;

/// Names that expressions may use that are not record fields.
pub const GLOBALS: &[&str] = &[
    "references",
    "source_system",
    "reference",
    "fhir_id",
    "key",
    "now",
    "none",
    "true",
    "false",
];

/// A problem in a mapping file, at a line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MappingProblem {
    /// The mapping file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl std::fmt::Display for MappingProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The conversion time, as a FHIR instant.
    pub now: String,
    /// Overrides the mapping's `source_system`.
    pub source_system: Option<String>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            now: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            source_system: None,
        }
    }
}

/// The MiniJinja environment of one mapping, with its code tables and filters.
pub struct MappingEngine {
    env: Environment<'static>,
    source_system: String,
    current: Arc<Mutex<Position>>,
    quirks: QuirkLog,
    codes: Arc<CodeTables>,
    now: String,
    date_order: DateOrder,
    date_notes: DateNotes,
}

/// An expression of a mapping: MiniJinja's compiled form, and the direct form when it has one
/// (`super::direct`: evaluated on the record's JSON, MiniJinja used when it defers).
struct Compiled<'e> {
    jinja: Expression<'e, 'static>,
    direct: Option<Direct>,
}

/// One record being mapped: its values, and their template form built only if an expression needs it.
struct RecordScope<'r> {
    record: &'r SourceRecord,
    jinja: OnceCell<JinjaValue>,
}

impl RecordScope<'_> {
    fn jinja(&self) -> &JinjaValue {
        self.jinja.get_or_init(|| jinja_value(&self.record.context))
    }
}

/// A compiled mapping, ready to map records.
pub struct CompiledMapping<'e> {
    engine: &'e MappingEngine,
    resources: Vec<CompiledResource<'e>>,
}

struct CompiledResource<'e> {
    spec: &'e ResourceMap,
    id: Compiled<'e>,
    when: Option<Compiled<'e>>,
    rules: Vec<CompiledRule<'e>>,
    /// What every resource built starts as: its type, its id to come, its profile. Copied for each record
    /// (a copy keeps the members' hashes, which building it again would compute).
    start: Map<String, Value>,
    /// The record values its expressions read: the key it is reused by ([`super::reuse`]); `None` when
    /// it is not reused.
    inputs: Option<Inputs>,
}

impl CompiledResource<'_> {
    /// Every expression of the resource: its id, its `when`, each rule's value and `when`.
    fn expressions(&self) -> impl Iterator<Item = &Compiled<'_>> {
        self.expressions_with_text().map(|(compiled, _)| compiled)
    }

    /// [`Self::expressions`], each with its text in the mapping file.
    fn expressions_with_text(&self) -> impl Iterator<Item = (&Compiled<'_>, &str)> {
        fn text(spanned: &Spanned<String>) -> &str {
            spanned.get_ref()
        }
        let rules = self.rules.iter().flat_map(move |rule| {
            std::iter::once((&rule.value, text(&rule.spec.value)))
                .chain(rule.when.iter().zip(rule.spec.when.iter().map(text)))
        });
        std::iter::once((&self.id, text(&self.spec.id)))
            .chain(self.when.iter().zip(self.spec.when.iter().map(text)))
            .chain(rules)
    }

    /// What the resource is reused by, when every expression has a direct form: those read nothing but
    /// the variables and attribute paths MiniJinja reports (a slice's value, or `debug()`'s whole context,
    /// is not reported, and neither has a direct form; a constant rule has one too).
    fn reuse_inputs(&self) -> Option<Inputs> {
        self.expressions()
            .all(|compiled| compiled.direct.is_some())
            .then(|| Inputs::of(self.expressions().map(|compiled| &compiled.jinja)))
    }
}

/// `{"resourceType": type, "id": null, "meta": {"profile": [profile]}}`, the meta when there is a profile.
fn resource_start(resource_type: &str, profile: Option<&str>) -> Map<String, Value> {
    let mut start = Map::new();
    start.insert("resourceType".into(), Value::from(resource_type));
    start.insert("id".into(), Value::Null);
    if let Some(profile) = profile {
        start.insert("meta".into(), json!({ "profile": [profile] }));
    }
    start
}

struct CompiledRule<'e> {
    spec: &'e Rule,
    target: TargetPath,
    value: Compiled<'e>,
    when: Option<Compiled<'e>>,
    sources: String,
    /// The one variable every source field of the rule is in (`demographics`), when there is one.
    variable: Option<String>,
    /// The value of a rule that reads nothing and calls nothing (`'active'`, a literal Coding), evaluated
    /// once when the mapping is compiled (`None` inside: it is empty).
    constant: Option<Option<Value>>,
}

impl MappingEngine {
    /// An environment for a mapping file with its code tables.
    pub fn new(
        file: &MappingFile,
        codes: CodeTables,
        options: &EngineOptions,
        quirks: &QuirkLog,
    ) -> Self {
        let source_system = options
            .source_system
            .clone()
            .unwrap_or_else(|| file.mapping.source_system.clone());
        let current = Arc::new(Mutex::new(Position::file("")));
        let codes = Arc::new(codes);
        let date_notes = DateNotes {
            quirks: quirks.clone(),
            current: current.clone(),
        };
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.add_global("source_system", source_system.clone());
        add_code_filter(&mut env, codes.clone());
        add_list_filter(&mut env);
        add_date_filters(&mut env, file.source.ambiguous_dates, date_notes.clone());
        add_reference_functions(&mut env, source_system.clone(), options.now.clone());
        Self {
            env,
            source_system,
            current,
            quirks: quirks.clone(),
            codes,
            now: options.now.clone(),
            date_order: file.source.ambiguous_dates,
            date_notes,
        }
    }

    /// Where the values being mapped are (for the quirks the date filters note).
    fn set_current(&self, position: Position) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = position;
    }

    /// The source system URI in force.
    pub fn source_system(&self) -> &str {
        &self.source_system
    }

    /// Compile every expression and target of a mapping, collecting every problem.
    pub fn compile<'e>(
        &'e self,
        file: &'e MappingFile,
        text: &str,
        file_name: &str,
    ) -> Result<CompiledMapping<'e>, Vec<MappingProblem>> {
        let schema = FhirSchema::global();
        let mut problems = Vec::new();
        let mut resources = Vec::new();
        for spec in &file.resources {
            let mut problem = |span: std::ops::Range<usize>, message: String| {
                problems.push(MappingProblem {
                    file: file_name.to_owned(),
                    line: line_of(text, span.start),
                    message,
                })
            };
            let resource_type = spec.resource_type.get_ref();
            if !schema.is_resource_type(resource_type) {
                problem(
                    spec.resource_type.span(),
                    format!("'{resource_type}' is not a FHIR R4 resource type"),
                );
                continue;
            }
            let id = self.expression(&spec.id, &mut problem);
            let when = spec
                .when
                .as_ref()
                .and_then(|w| self.expression(w, &mut problem));
            let mut rules = Vec::new();
            for rule in &spec.rules {
                let target = TargetPath::compile(rule.target.get_ref(), resource_type, schema)
                    .map_err(|why| problem(rule.target.span(), why))
                    .ok();
                let value = self.expression(&rule.value, &mut problem);
                let rule_when = rule
                    .when
                    .as_ref()
                    .and_then(|w| self.expression(w, &mut problem));
                if let (Some(target), Some(value)) = (target, value) {
                    let fields = source_fields(&value.jinja);
                    let variable = only_variable(&fields);
                    let sources = fields.into_iter().collect::<Vec<_>>().join(", ");
                    // Only an expression with a direct form is known to read nothing MiniJinja's
                    // analysis leaves out (a slice's value: `referral.name[:40]` reads `referral`).
                    let constant = (rule_when.is_none() && value.direct.is_some())
                        .then(|| constant_value(rule.value.get_ref(), &value.jinja))
                        .flatten();
                    rules.push(CompiledRule {
                        spec: rule,
                        target,
                        value,
                        when: rule_when,
                        sources,
                        variable,
                        constant,
                    });
                }
            }
            if let Some(id) = id {
                let mut resource = CompiledResource {
                    spec,
                    id,
                    when,
                    rules,
                    start: resource_start(spec.resource_type.get_ref(), spec.profile.as_deref()),
                    inputs: None,
                };
                resource.inputs = resource.reuse_inputs();
                resources.push(resource);
            }
        }
        if problems.is_empty() {
            Ok(CompiledMapping {
                engine: self,
                resources,
            })
        } else {
            Err(problems)
        }
    }

    fn expression(
        &self,
        source: &Spanned<String>,
        problem: &mut impl FnMut(std::ops::Range<usize>, String),
    ) -> Option<Compiled<'_>> {
        if let Err(why) = closed_early(source.get_ref()) {
            problem(source.span(), why);
            return None;
        }
        match self.env.compile_expression_owned(source.get_ref().clone()) {
            Ok(jinja) => Some(Compiled {
                jinja,
                direct: Direct::compile(source.get_ref()),
            }),
            Err(err) => {
                problem(
                    source.span(),
                    format!(
                        "expression '{}' does not compile: {}",
                        source.get_ref(),
                        err.detail().unwrap_or(&err.to_string())
                    ),
                );
                None
            }
        }
    }
}

/// The value of an expression that reads no record field, calls no function and applies no filter, with
/// `source_system` the only global it may read: the same for every record, so evaluated once here (the
/// rule then writes a copy). `None`: not such an expression, or it does not evaluate.
fn constant_value(text: &str, expression: &Expression<'_, '_>) -> Option<Option<Value>> {
    if text.contains(['(', '|']) {
        return None;
    }
    let reads = expression.undeclared_variables(true);
    if reads.iter().any(|name| name != "source_system") {
        return None;
    }
    let value = expression.eval(minijinja::context! {}).ok()?;
    let json = serde_json::to_value(&value).ok()?;
    Some(prune(json))
}

/// The variable all these fields are in (`demographics` for `demographics.sex, demographics.birthDate`).
fn only_variable(fields: &BTreeSet<String>) -> Option<String> {
    let mut variables = fields
        .iter()
        .map(|f| f.split('.').next().unwrap_or_default());
    let first = variables.next()?;
    variables.all(|v| v == first).then(|| first.to_owned())
}

/// The record fields an expression reads (`user.givenName`), without globals.
pub fn source_fields(expr: &Expression<'_, '_>) -> BTreeSet<String> {
    expr.undeclared_variables(true)
        .into_iter()
        .filter(|v| !GLOBALS.contains(&v.split('.').next().unwrap_or_default()))
        .collect()
}

impl CompiledMapping<'_> {
    /// Build the resources of one record. A rule that fails, or a required value that is empty, rejects
    /// the record with the position, the target element, the source fields and what was expected.
    pub fn map(&self, record: &SourceRecord) -> Result<Vec<Value>, RecordError> {
        let products = self.map_reusing(record, &mut ReuseMemo::<()>::new(false))?;
        Ok(products
            .into_iter()
            .filter_map(|product| match product {
                Product::Built(resource, _) => Some(resource),
                Product::Again(()) => None,
            })
            .collect())
    }

    /// [`Self::map`], each resource taken from `memo` when an earlier record built it from the same
    /// values; a resource built may be kept under the key given with it, once found valid
    /// ([`ReuseMemo::keep`]).
    pub fn map_reusing<T: Clone>(
        &self,
        record: &SourceRecord,
        memo: &mut ReuseMemo<T>,
    ) -> Result<Vec<Product<T>>, RecordError> {
        let scope = self.scope(record);
        let mut out = Vec::new();
        for (index, resource) in self.resources.iter().enumerate() {
            if resource.spec.from.get_ref() != record.kind {
                continue;
            }
            let lookup = match &resource.inputs {
                Some(inputs) => memo.look_up(index, inputs, &record.context),
                None => Lookup::NotTried,
            };
            let key = match lookup {
                Lookup::Found(kept) => {
                    out.push(Product::Again(kept.clone()));
                    continue;
                }
                Lookup::Missing(key) => Some(key),
                Lookup::NotTried => None,
            };
            let calls = self.engine.quirks.calls();
            if let Some(built) = self.build(resource, &scope)? {
                // Building noted something (a tolerated date): each record that reads it notes it again.
                let key = key.filter(|_| self.engine.quirks.calls() == calls);
                out.push(Product::Built(built, key));
            }
        }
        Ok(out)
    }

    /// The record being mapped, its position noted for the date filters.
    fn scope<'r>(&self, record: &'r SourceRecord) -> RecordScope<'r> {
        self.engine.set_current(record.position.clone());
        RecordScope {
            record,
            jinja: OnceCell::new(),
        }
    }

    /// Whether the mapping builds anything from records of this kind.
    pub fn handles(&self, kind: &str) -> bool {
        self.resources.iter().any(|r| r.spec.from.get_ref() == kind)
    }

    /// Every record field the mapping reads (for coverage).
    pub fn fields_read(&self) -> BTreeSet<String> {
        self.resources
            .iter()
            .flat_map(CompiledResource::expressions)
            .flat_map(|compiled| source_fields(&compiled.jinja))
            .collect()
    }

    fn build(
        &self,
        resource: &CompiledResource<'_>,
        scope: &RecordScope<'_>,
    ) -> Result<Option<Value>, RecordError> {
        let record = scope.record;
        let resource_type = resource.spec.resource_type.get_ref();
        let fail = |what: &str, message: String| {
            RecordError::new(record.position.clone().with_field(what.to_owned()), message)
        };
        if let Some(when) = &resource.when {
            let keep = self
                .engine
                .truth(when, scope)
                .map_err(|e| fail(resource_type, format!("{resource_type} 'when': {e}")))?;
            if !keep {
                return Ok(None);
            }
        }
        let source_id = self
            .engine
            .text(&resource.id, scope)
            .map_err(|e| fail(resource_type, format!("{resource_type}.id: {e}")))?;
        if source_id.trim().is_empty() || source_id == "none" {
            return Err(fail(
                resource_type,
                format!(
                    "{resource_type}.id ← {}: empty (expected the record's source id)",
                    resource.spec.id.get_ref()
                ),
            ));
        }
        let mut start = resource.start.clone();
        if let Some(id) = start.values_mut().nth(1) {
            *id = ids::resource_id(&self.engine.source_system, resource_type, &source_id).into();
        }
        let mut built = Value::Object(start);
        let mut cursor = Cursor::default();
        for rule in &resource.rules {
            // A rule reading only a joined row (demographics) notes its date quirks at that row.
            let joined = joined_row(rule, record);
            if let Some(at) = joined {
                self.engine.set_current(at.clone());
            }
            let applied = self.apply_rule(rule, resource_type, scope, &mut built, &mut cursor);
            if joined.is_some() {
                self.engine.set_current(record.position.clone());
            }
            let Err(message) = applied else {
                continue;
            };
            let field = if rule.sources.is_empty() {
                rule.target.as_str()
            } else {
                &rule.sources
            };
            self.joined_failure(rule, record, field, message)?;
        }
        Ok(Some(built))
    }

    /// A rule that fails. When every value it reads comes from a row of another file joined to the record
    /// (a demographics row), the problem is that row's: reported at its line, and the element left out
    /// (the record converts), unless the element is required (the record is rejected, naming the row).
    fn joined_failure(
        &self,
        rule: &CompiledRule<'_>,
        record: &SourceRecord,
        field: &str,
        message: String,
    ) -> Result<(), RecordError> {
        match joined_row(rule, record) {
            Some(at) if !rule.spec.required => {
                self.engine.quirks.reject_joined(RecordError::new(
                    at.clone().with_field(field.to_owned()),
                    format!(
                        "{message} (left out of the {} at {}, which converts without it)",
                        record.kind, record.position
                    ),
                ));
                Ok(())
            }
            Some(at) => Err(RecordError::new(
                record.position.clone().with_field(field.to_owned()),
                format!("{message} (the value is in {at})"),
            )),
            None => Err(RecordError::new(
                record.position.clone().with_field(field.to_owned()),
                message,
            )),
        }
    }

    fn apply_rule(
        &self,
        rule: &CompiledRule<'_>,
        resource_type: &str,
        scope: &RecordScope<'_>,
        built: &mut Value,
        cursor: &mut Cursor,
    ) -> Result<(), String> {
        let label = || {
            format!(
                "{resource_type}.{} ← {}",
                rule.target.as_str(),
                rule.spec.value.get_ref()
            )
        };
        let value = match &rule.constant {
            Some(constant) => constant.clone(),
            None => {
                if let Some(when) = &rule.when
                    && !self
                        .engine
                        .truth(when, scope)
                        .map_err(|e| format!("{} ('when'): {e}", label()))?
                {
                    return Ok(());
                }
                let json = self
                    .engine
                    .json(&rule.value, scope)
                    .map_err(|e| format!("{}: {e}", label()))?;
                prune(json)
            }
        };
        match value {
            Some(json) => rule
                .target
                .set(built, json, cursor)
                .map_err(|why| format!("{}: {why}", label())),
            None if rule.spec.required => Err(format!(
                "{}: required value is empty (expected a value)",
                label()
            )),
            None => Ok(()),
        }
    }
}

/// The joined row (a demographics row) every value of the rule comes from, when there is one.
fn joined_row<'r>(rule: &CompiledRule<'_>, record: &'r SourceRecord) -> Option<&'r Position> {
    let variable = rule.variable.as_deref()?;
    record
        .joined
        .iter()
        .find(|(name, _)| *name == variable)
        .map(|(_, at)| at)
}

fn describe(err: &Error) -> String {
    err.detail()
        .map(str::to_owned)
        .unwrap_or_else(|| err.to_string())
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

fn is_empty(value: &JinjaValue) -> bool {
    value.is_undefined() || value.is_none() || value.as_str().is_some_and(|s| s.trim().is_empty())
}

/// What a code table says about a source value.
enum Looked {
    /// The value is empty: nothing to look up.
    Empty,
    /// The Coding it maps to.
    Found(JinjaValue),
    /// Not in the table: the message names the table and its codes.
    Unknown(String),
}

/// Look a source value up in a code table; a table that does not exist is an error.
fn look_up(tables: &CodeTables, value: &JinjaValue, table: &str) -> Result<Looked, Error> {
    if is_empty(value) {
        return Ok(Looked::Empty);
    }
    let text = value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string());
    let codes_of = tables.get(table).ok_or_else(|| invalid(no_table(table)))?;
    Ok(match codes_of.lookup(&text) {
        Some(coding) => Looked::Found(JinjaValue::from_serialize(coding)),
        None => Looked::Unknown(unknown_code(&text, table, codes_of)),
    })
}

/// The error of a lookup in a code table the mapping does not have.
pub(super) fn no_table(table: &str) -> String {
    format!("no code table '{table}' (expected codes/{table}.csv)")
}

/// The error of a source code a table does not list.
pub(super) fn unknown_code(text: &str, table: &str, codes: &CodeTable) -> String {
    format!(
        "unknown code '{text}' in code table '{table}' (expected one of: {})",
        codes.source_codes().join(", ")
    )
}

fn add_code_filter(env: &mut Environment<'static>, codes: Arc<CodeTables>) {
    let tables = codes.clone();
    env.add_filter(
        "lookup",
        move |value: JinjaValue, table: String| -> Result<JinjaValue, Error> {
            match look_up(&tables, &value, &table)? {
                Looked::Found(coding) => Ok(coding),
                Looked::Empty | Looked::Unknown(_) => Ok(JinjaValue::UNDEFINED),
            }
        },
    );
    env.add_filter(
        "code",
        move |value: JinjaValue, table: String| -> Result<JinjaValue, Error> {
            match look_up(&codes, &value, &table)? {
                Looked::Found(coding) => Ok(coding),
                Looked::Empty => Ok(JinjaValue::UNDEFINED),
                Looked::Unknown(message) => Err(invalid(message)),
            }
        },
    );
}

/// Notes the date quirks the date filters meet, at the position of the values being mapped.
#[derive(Clone)]
struct DateNotes {
    quirks: QuirkLog,
    current: Arc<Mutex<Position>>,
}

impl DateNotes {
    fn note(&self, quirk: Option<DateQuirk>) {
        let Some(quirk) = quirk else { return };
        let position = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let how = match quirk {
            DateQuirk::DayFirst => "day/month/year".to_owned(),
            DateQuirk::MonthFirst => "month/day/year".to_owned(),
            DateQuirk::Ambiguous(DateOrder::Mdy) => {
                "month/day/year (ambiguous; set [source] ambiguous_dates)".to_owned()
            }
            DateQuirk::Ambiguous(DateOrder::Dmy) => {
                "day/month/year (ambiguous; set [source] ambiguous_dates)".to_owned()
            }
            DateQuirk::NoOffset => {
                return self.quirks.note(
                    format!(
                        "date-times without a UTC offset kept to their date (in records of {}; give one: | datetime('+10:00'))",
                        position.file
                    ),
                    position.line,
                );
            }
        };
        self.quirks.note(
            format!(
                "non-ISO dates read as {how} (in records of {})",
                position.file
            ),
            position.line,
        );
    }
}

fn add_date_filters(env: &mut Environment<'static>, order: DateOrder, notes: DateNotes) {
    let note = move |quirk: Option<DateQuirk>| notes.note(quirk);
    let note_date = note.clone();
    env.add_filter(
        "date",
        move |value: JinjaValue, format: Option<String>| -> Result<JinjaValue, Error> {
            if is_empty(&value) {
                return Ok(JinjaValue::UNDEFINED);
            }
            let text = value.to_string();
            let parsed = match format {
                Some(format) => dates::parse_date_with(&text, &format),
                None => dates::parse_date(&text, order).map(|(date, quirk)| {
                    note_date(quirk);
                    date
                }),
            };
            parsed.map(JinjaValue::from).map_err(invalid)
        },
    );
    env.add_filter(
        "datetime",
        move |value: JinjaValue, offset: Option<String>| -> Result<JinjaValue, Error> {
            if is_empty(&value) {
                return Ok(JinjaValue::UNDEFINED);
            }
            let (text, quirk) = dates::parse_datetime(&value.to_string(), order, offset.as_deref())
                .map_err(invalid)?;
            note(quirk);
            Ok(JinjaValue::from(text))
        },
    );
}

/// `value | each`: a list whatever the source gave — XML turns one repeated element into a value and two into
/// a list, so mappings over XML iterate `AddressList.Address | each`. Empty gives an empty list.
/// `value | text`: the text of an XML element that also has attributes (`<Email Type="06">a@b</Email>`).
fn add_list_filter(env: &mut Environment<'static>) {
    env.add_filter("each", |value: JinjaValue| -> JinjaValue {
        if is_empty(&value) {
            return JinjaValue::from(Vec::<JinjaValue>::new());
        }
        if value.kind() == minijinja::value::ValueKind::Seq {
            return value;
        }
        JinjaValue::from(vec![value])
    });
    env.add_filter("text", |value: JinjaValue| -> JinjaValue {
        if value.kind() == minijinja::value::ValueKind::Map {
            return value.get_attr("#text").unwrap_or(JinjaValue::UNDEFINED);
        }
        value
    });
}

fn add_reference_functions(env: &mut Environment<'static>, source_system: String, now: String) {
    let source_system_for_lists = source_system.clone();
    let system = source_system.clone();
    env.add_function(
        "reference",
        move |resource_type: String, id: JinjaValue| -> JinjaValue {
            if is_empty(&id) {
                return JinjaValue::UNDEFINED;
            }
            JinjaValue::from(ids::reference(&system, &resource_type, &id.to_string()))
        },
    );
    env.add_function(
        "fhir_id",
        move |resource_type: String, id: JinjaValue| -> JinjaValue {
            if is_empty(&id) {
                return JinjaValue::UNDEFINED;
            }
            JinjaValue::from(ids::resource_id(
                &source_system,
                &resource_type,
                &id.to_string(),
            ))
        },
    );
    // A source key of several values (a student and a guardian), each escaped: ids built from it cannot
    // collide whatever separator the values hold (`canonical::ids::key`).
    env.add_function(
        "key",
        |parts: minijinja::value::Rest<JinjaValue>| -> JinjaValue {
            if parts.iter().all(is_empty) {
                return JinjaValue::UNDEFINED;
            }
            let texts: Vec<String> = parts
                .iter()
                .map(|p| {
                    if is_empty(p) {
                        String::new()
                    } else {
                        p.to_string()
                    }
                })
                .collect();
            JinjaValue::from(ids::key(texts.iter().map(String::as_str)))
        },
    );
    env.add_function("now", move || -> JinjaValue {
        JinjaValue::from(now.clone())
    });
    let system = source_system_for_lists;
    env.add_function("references", move |resource_type: String, ids: JinjaValue| -> JinjaValue {
        let list: Vec<Value> = ids
            .try_iter()
            .into_iter()
            .flatten()
            .filter(|id| !is_empty(id))
            .map(|id| json!({"reference": ids::reference(&system, &resource_type, &id.to_string())}))
            .collect();
        JinjaValue::from_serialize(list)
    });
}

/// Evaluating one expression on one record: directly when it can be, else with MiniJinja. Errors are
/// MiniJinja's detail text (the direct form gives the same).
impl MappingEngine {
    fn scope(&self) -> direct::Scope<'_> {
        direct::Scope {
            codes: &self.codes,
            source_system: &self.source_system,
            now: &self.now,
            date_order: self.date_order,
        }
    }

    /// Evaluate directly; `None` when the expression has no direct form or the evaluation defers.
    fn direct<T>(
        &self,
        expr: &Compiled<'_>,
        scope: &RecordScope<'_>,
        finish: impl FnOnce(direct::Val<'_>) -> Result<T, Stop>,
    ) -> Option<Result<T, String>> {
        let compiled = expr.direct.as_ref()?;
        let context = self.scope();
        let mut quirks = Vec::new();
        let result = compiled
            .eval(&scope.record.context, &context, &mut quirks)
            .and_then(finish);
        let kept = match result {
            Err(Stop::Defer) => return None,
            Ok(value) => Ok(value),
            Err(Stop::Fail(message)) => Err(message),
        };
        quirks
            .into_iter()
            .for_each(|q| self.date_notes.note(Some(q)));
        Some(kept)
    }

    fn template(&self, expr: &Compiled<'_>, scope: &RecordScope<'_>) -> Result<JinjaValue, String> {
        expr.jinja.eval(scope.jinja()).map_err(|e| describe(&e))
    }

    /// The JSON an expression gives.
    fn json(&self, expr: &Compiled<'_>, scope: &RecordScope<'_>) -> Result<Value, String> {
        if let Some(done) = self.direct(expr, scope, direct::to_json) {
            return done;
        }
        let value = self.template(expr, scope)?;
        serde_json::to_value(&value).map_err(|e| e.to_string())
    }

    /// Whether an expression is true (`when`).
    fn truth(&self, expr: &Compiled<'_>, scope: &RecordScope<'_>) -> Result<bool, String> {
        if let Some(done) = self.direct(expr, scope, |v| direct::truthy(&v)) {
            return done;
        }
        Ok(self.template(expr, scope)?.is_true())
    }

    /// An expression's value as text (an id).
    fn text(&self, expr: &Compiled<'_>, scope: &RecordScope<'_>) -> Result<String, String> {
        if let Some(done) = self.direct(expr, scope, |v| direct::id_text(&v)) {
            return done;
        }
        let value = self.template(expr, scope)?;
        Ok(value
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string()))
    }
}

impl MappingEngine {
    /// The record fields an expression reads, or why it does not compile.
    pub fn fields_of(&self, expression: &str) -> Result<BTreeSet<String>, String> {
        closed_early(expression)?;
        self.env
            .compile_expression_owned(expression.to_owned())
            .map(|e| source_fields(&e))
            .map_err(|e| e.to_string())
    }
}

/// Refuse an expression holding `}}` outside its string literals and brackets. MiniJinja's lexer reads such
/// a `}}` as the end of a `{{ ... }}` block, and minijinja 2.24 panics on what follows it ("empty lexer
/// stack": found by the `mapping_toml` fuzz target, `fuzz/regressions/mapping_toml/`), so that expression
/// never reaches MiniJinja. The scan follows the lexer: strings (with their escapes) are skipped, and `}}`
/// ends the expression only where every `(`, `[` and `{` before it is closed (`{'a': {'b': 1}}` is one
/// expression).
pub(super) fn closed_early(expression: &str) -> Result<(), String> {
    let mut quote = None;
    let mut open_brackets = 0_isize;
    let mut chars = expression.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(open), c) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '}') if open_brackets == 0 && chars.peek() == Some(&'}') => {
                return Err(format!(
                    "expression '{expression}' does not compile: '}}}}' ends it early (expected one expression; \
                     a mapping's expressions are written without '{{{{ }}}}')"
                ));
            }
            (None, '(' | '[' | '{') => open_brackets += 1,
            (None, ')' | ']' | '}') => open_brackets -= 1,
            (None, _) => {}
        }
    }
    Ok(())
}

/// A record's JSON as a template value. With serde_json's `arbitrary_precision`, a number would reach the
/// templates as a map holding its text: integers become template integers, a decimal a template float
/// when that float is the same number, and otherwise its exact text (a string: put where FHIR wants a
/// decimal, the schema refuses it, so it is never silently rounded).
fn jinja_value(value: &Value) -> JinjaValue {
    match value {
        Value::Number(number) => jinja_number(number),
        Value::Array(items) => items.iter().map(jinja_value).collect::<Vec<_>>().into(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.as_str(), jinja_value(v)))
            .collect(),
        other => JinjaValue::from_serialize(other),
    }
}

fn jinja_number(number: &serde_json::Number) -> JinjaValue {
    if let Some(i) = number.as_i64() {
        return i.into();
    }
    if let Some(u) = number.as_u64() {
        return u.into();
    }
    let text = number.to_string();
    match number.as_f64() {
        Some(float) if same_decimal(&text, &float.to_string()) => float.into(),
        _ => text.into(),
    }
}

/// Whether two decimal texts are the same number (`1.50` and `1.5`, `1e2` and `100`).
fn same_decimal(a: &str, b: &str) -> bool {
    decimal_parts(a).is_some_and(|parts| Some(parts) == decimal_parts(b))
}

/// (negative, significant digits, exponent of the last digit).
fn decimal_parts(text: &str) -> Option<(bool, String, i64)> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = whole.chars().chain(fraction.chars()).collect();
    let mut exponent = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    let trimmed = digits.trim_start_matches('0');
    let significant = trimmed.trim_end_matches('0');
    exponent = exponent.checked_add(i64::try_from(trimmed.len() - significant.len()).ok()?)?;
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((negative, significant.to_owned(), exponent))
}

#[cfg(test)]
mod tests {
    //! The direct evaluation of expressions (`super::direct`) against MiniJinja's, on every expression
    //! of the shipped mappings and generated records.
    use super::*;

    use crate::mapping::catalog;
    use std::path::Path;

    #[test]
    fn an_expression_closed_early_is_refused_before_minijinja_reads_it() {
        for refused in [
            "organiza}}}}tion.name",
            "a }} b",
            "a -}}",
            "a }}",
            "(a) }} ~ b",
        ] {
            let why = closed_early(refused).expect_err(refused);
            assert!(why.contains("'}}' ends it early"), "{why}");
        }
        for accepted in [
            "organization.name",
            "{'a': {'b': 1}}",
            "[{'a': 1}]",
            "'}}' ~ a",
            "\"}}\" ~ a",
            "'it\\'s }}' ~ a",
            "f({'a': 1}) ~ '}'",
        ] {
            assert_eq!(closed_early(accepted), Ok(()), "{accepted}");
        }
        // MiniJinja compiles them as one expression each.
        let env = minijinja::Environment::new();
        for accepted in ["{'a': {'b': 1}}", "'}}' ~ a", "'it\\'s }}' ~ a"] {
            env.compile_expression(accepted).expect(accepted);
        }
    }

    /// Values a record field takes in the generated records (text, codes, dates, numbers, none, nested).
    const POOL: &[&str] = &[
        r#""""#,
        r#""  ""#,
        r#""abc""#,
        r#""Y""#,
        r#""true""#,
        r#""false""#,
        r#""inactive""#,
        r#""2024-01-05""#,
        r#""03/04/2020""#,
        r#""13/04/2020""#,
        r#""2020-03-04T10:00:00""#,
        r#""2020-03-04T10:00:00Z""#,
        "0",
        "7",
        "1.50",
        "null",
        "true",
        r##"{"#text": "x", "Type": "06", "a": "b"}"##,
        r#"["a", "", "b"]"#,
        r#"[{"z": "1", "b": "c"}]"#,
    ];

    /// A small deterministic generator (xorshift), so a failure names a seed that reproduces it.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            usize::try_from(self.0 % n as u64).unwrap_or(0)
        }
    }

    /// A record whose fields (`referral.need_category`) hold generated values; code-table codes are
    /// offered too, so lookups find something.
    fn record(fields: &BTreeSet<String>, codes: &[String], rng: &mut Rng) -> Value {
        let mut context = serde_json::Map::new();
        for field in fields {
            let pick = rng.below(POOL.len() + codes.len() + 2);
            let value = if pick < POOL.len() {
                serde_json::from_str(POOL[pick]).unwrap()
            } else if pick < POOL.len() + codes.len() {
                Value::String(codes[pick - POOL.len()].clone())
            } else {
                continue;
            };
            let mut parts = field.split('.').peekable();
            let mut at = &mut context;
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    at.insert(part.to_owned(), value);
                    break;
                }
                let entry = at
                    .entry(part.to_owned())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(serde_json::Map::new());
                }
                let Value::Object(inner) = entry else { break };
                at = inner;
            }
        }
        Value::Object(context)
    }

    /// Every resource of every shipped mapping, mapped from generated records that repeat and differ in
    /// one value at a time: taken from the memo ([`CompiledMapping::map_reusing`], every resource built kept
    /// as if found valid) it is the resource built for the record, and both runs note the same quirks.
    #[test]
    fn a_reused_resource_is_the_one_built() {
        let mappings = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
        let (mut again, mut products) = (0, 0);
        for path in catalog::mapping_files(&mappings) {
            let loaded = catalog::load(&path).unwrap();
            let codes = source_codes(&loaded);
            let options = test_options();
            let (built_log, reused_log) = (QuirkLog::default(), QuirkLog::default());
            let engine =
                |log| MappingEngine::new(&loaded.file, loaded.codes.clone(), &options, log);
            let (building, reusing) = (engine(&built_log), engine(&reused_log));
            let (built, reused) = (compile(&building, &loaded), compile(&reusing, &loaded));
            let mut memo = ReuseMemo::new(true);
            for (index, resource) in built.resources.iter().enumerate() {
                let kind: &'static str =
                    Box::leak(resource.spec.from.get_ref().clone().into_boxed_str());
                let mut fields = BTreeSet::new();
                for expression in resource.expressions() {
                    fields.extend(source_fields(&expression.jinja));
                }
                let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (index as u64 + 1));
                let bases: Vec<Value> = (0..4).map(|_| record(&fields, &codes, &mut rng)).collect();
                for line in 0..160u64 {
                    let mut context = bases[rng.below(bases.len())].clone();
                    if rng.below(2) == 0 {
                        let other = record(&fields, &codes, &mut rng);
                        if let (Some(field), Value::Object(into), Value::Object(from)) = (
                            fields.iter().nth(rng.below(fields.len().max(1))),
                            &mut context,
                            other,
                        ) {
                            let variable = field.split('.').next().unwrap_or_default();
                            match from.get(variable) {
                                Some(value) => into.insert(variable.to_owned(), value.clone()),
                                None => into.remove(variable),
                            };
                        }
                    }
                    let source = record_at(kind, Position::line("test.csv", line + 2), context);
                    let expected = built.map(&source).map_err(|e| e.to_string());
                    let got = reused
                        .map_reusing(&source, &mut memo)
                        .map(|resources| {
                            resources
                                .into_iter()
                                .map(|product| match product {
                                    Product::Built(value, key) => {
                                        if let Some(key) = key {
                                            memo_keep(&mut memo, key, &value);
                                        }
                                        value
                                    }
                                    Product::Again(value) => {
                                        again += 1;
                                        value
                                    }
                                })
                                .inspect(|_| products += 1)
                                .collect::<Vec<_>>()
                        })
                        .map_err(|e| e.to_string());
                    assert_eq!(
                        got,
                        expected,
                        "{}: {} on {}",
                        path.display(),
                        kind,
                        source.context
                    );
                }
            }
            assert_eq!(
                reused_log.snapshot(),
                built_log.snapshot(),
                "{}",
                path.display()
            );
        }
        eprintln!("{again} of {products} resources taken from the memo");
        assert!(
            again * 4 >= products,
            "only {again} of {products} resources reused"
        );
    }

    /// A resource whose building notes a tolerated date is built again for every record that reads the
    /// date, so each notes it; the resource beside it that notes nothing is reused.
    #[test]
    fn a_resource_that_notes_a_quirk_is_built_for_each_record() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = referral_mapping(
            dir.path(),
            &[
                (
                    "school",
                    "school.id",
                    "school.name ~ ' since ' ~ (school.opened | date)",
                ),
                ("agency", "school.id ~ '-agency'", "school.name"),
            ],
        );
        let options = test_options();
        let log = QuirkLog::default();
        let engine = MappingEngine::new(&loaded.file, loaded.codes.clone(), &options, &log);
        let mapping = compile(&engine, &loaded);
        let mut memo = ReuseMemo::new(true);
        let mut again = Vec::new();
        for line in 2..8 {
            let context = json!({"school": {"id": "s1", "name": "North", "opened": "03/04/2020"}});
            let source = record_at("referral", Position::line("referrals.csv", line), context);
            let products = mapping.map_reusing(&source, &mut memo).unwrap();
            for (index, product) in products.into_iter().enumerate() {
                match product {
                    Product::Built(value, key) => {
                        assert!(index == 1 || key.is_none(), "the school may not be kept");
                        if let Some(key) = key {
                            memo_keep(&mut memo, key, &value);
                        }
                    }
                    Product::Again(_) => again.push((line, index)),
                }
            }
        }
        assert_eq!(again, [(4, 1), (5, 1), (6, 1), (7, 1)]);
        let quirks = log.snapshot();
        assert_eq!(quirks.len(), 1, "{quirks:?}");
        assert_eq!(quirks[0].count, 6, "{quirks:?}");
    }

    /// A resource with an expression that has no direct form (a slice, whose value MiniJinja's analysis
    /// does not report; `debug()`, which reads the whole record) is never looked up: each record builds it.
    #[test]
    fn a_resource_reading_what_the_analysis_cannot_see_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = referral_mapping(
            dir.path(),
            &[
                ("sliced id", "referral.id[:3]", "'x'"),
                ("sliced name", "referral.id", "referral.name[:40]"),
                ("debug", "referral.id", "debug() ~ ''"),
                ("plain", "referral.kind", "referral.name"),
            ],
        );
        let options = test_options();
        let log = QuirkLog::default();
        let engine = MappingEngine::new(&loaded.file, loaded.codes.clone(), &options, &log);
        let mapping = compile(&engine, &loaded);
        let reused: Vec<bool> = mapping
            .resources
            .iter()
            .map(|r| r.inputs.is_some())
            .collect();
        assert_eq!(reused, [false, false, false, true]);
        let mut memo = ReuseMemo::new(true);
        let mut again = 0;
        for (line, name) in [(2, "North"), (3, "North"), (4, "North"), (5, "South")] {
            let context =
                json!({"referral": {"id": format!("r-{line}"), "kind": "k", "name": name}});
            let source = record_at("referral", Position::line("referrals.csv", line), context);
            let products = mapping.map_reusing(&source, &mut memo).unwrap();
            assert_eq!(products.len(), 4);
            for (index, product) in products.into_iter().enumerate() {
                match product {
                    Product::Built(value, Some(key)) => memo_keep(&mut memo, key, &value),
                    Product::Built(_, None) => {
                        assert!(index < 3, "line {line}: the plain one is keyed")
                    }
                    Product::Again(_) => {
                        assert_eq!(
                            index, 3,
                            "line {line}: resource {index} taken from the memo"
                        );
                        again += 1;
                    }
                }
            }
        }
        assert_eq!(
            again, 1,
            "the plain resource is reused at line 4 (North again), not at 5"
        );
    }

    /// A mapping of referral records written to `dir` and loaded: one Organization per `(name, id, value)`,
    /// its id and its `name` element from those expressions.
    fn referral_mapping(dir: &Path, resources: &[(&str, &str, &str)]) -> catalog::LoadedMapping {
        let mut text = String::from(
            "[mapping]\nname = \"test\"\nadapter = \"referral-csv\"\ntitle = \"t\"\n\
             description = \"d\"\nsource_system = \"urn:test\"\n\n",
        );
        for (name, id, value) in resources {
            text.push_str(&format!(
                "[[resources]]\nname = \"{name}\"\nfrom = \"referral\"\ntype = \"Organization\"\n\
                 id = \"{id}\"\n\n[[resources.rules]]\ntarget = \"name\"\nvalue = \"{value}\"\n\n"
            ));
        }
        let path = dir.join("test.toml");
        std::fs::write(&path, text).unwrap();
        catalog::load(&path).unwrap()
    }

    fn compile<'e>(
        engine: &'e MappingEngine,
        loaded: &'e catalog::LoadedMapping,
    ) -> CompiledMapping<'e> {
        let compiled = engine.compile(&loaded.file, &loaded.text, &loaded.display_path());
        compiled.unwrap_or_else(|problems| panic!("{problems:?}"))
    }

    fn memo_keep(memo: &mut ReuseMemo<Value>, key: crate::mapping::reuse::ReuseKey, value: &Value) {
        memo.keep(key, 0, || value.clone());
    }

    /// The codes of a mapping's code tables (offered to the generated records so that lookups find some).
    fn source_codes(loaded: &catalog::LoadedMapping) -> Vec<String> {
        loaded
            .codes
            .values()
            .flat_map(|t| t.source_codes().iter().cloned())
            .collect()
    }

    fn test_options() -> EngineOptions {
        EngineOptions {
            now: "2026-01-01T00:00:00Z".into(),
            source_system: None,
        }
    }

    /// A record of `kind` at `position` holding `context`, with nothing related or joined.
    fn record_at(kind: &'static str, position: Position, context: Value) -> SourceRecord {
        SourceRecord {
            kind,
            key: String::new(),
            group: String::new(),
            position,
            context,
            related: Vec::new(),
            joined: Vec::new(),
        }
    }

    #[test]
    fn direct_and_template_evaluation_agree() {
        let mappings = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
        let files = catalog::mapping_files(&mappings);
        assert!(files.len() > 5, "no mappings under {}", mappings.display());
        let (mut compared, mut deferred, mut direct_forms, mut expressions) = (0, 0, 0, 0);
        for path in files {
            let loaded = catalog::load(&path).unwrap();
            let codes = source_codes(&loaded);
            let options = test_options();
            let engine = MappingEngine::new(
                &loaded.file,
                loaded.codes.clone(),
                &options,
                &QuirkLog::default(),
            );
            let mapping = engine
                .compile(&loaded.file, &loaded.text, &loaded.display_path())
                .unwrap();
            let all: Vec<(&Compiled<'_>, &str)> = mapping
                .resources
                .iter()
                .flat_map(CompiledResource::expressions_with_text)
                .collect();
            for (index, (expr, text)) in all.into_iter().enumerate() {
                expressions += 1;
                if expr.direct.is_none() {
                    continue;
                }
                direct_forms += 1;
                let fields = source_fields(&expr.jinja);
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1));
                for round in 0..48 {
                    let context = record(&fields, &codes, &mut rng);
                    let source = record_at("test", Position::file("test.csv"), context);
                    let scope = RecordScope {
                        record: &source,
                        jinja: OnceCell::new(),
                    };
                    let template = engine
                        .template(expr, &scope)
                        .and_then(|v| serde_json::to_value(&v).map_err(|e| e.to_string()));
                    let truth = engine.template(expr, &scope).map(|v| v.is_true());
                    let Some(direct) = engine.direct(expr, &scope, direct::to_json) else {
                        deferred += 1;
                        continue;
                    };
                    compared += 1;
                    let shown = format!(
                        "{}: {text} (round {round}) on {}",
                        path.display(),
                        source.context
                    );
                    assert_eq!(direct, template, "{shown}");
                    let direct_truth = engine.direct(expr, &scope, |v| direct::truthy(&v));
                    assert_eq!(direct_truth.unwrap(), truth, "truth of {shown}");
                }
            }
        }
        eprintln!(
            "{direct_forms} of {expressions} expressions direct; {compared} evaluations compared, {deferred} deferred"
        );
        assert!(
            direct_forms * 10 >= expressions * 6,
            "only {direct_forms} of {expressions} expressions have a direct form"
        );
        assert!(
            compared >= deferred * 2,
            "{compared} evaluations compared, {deferred} deferred"
        );
    }
}

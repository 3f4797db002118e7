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

use super::codes::CodeTables;
use super::dates::{self, DateQuirk};
use super::model::{DateOrder, MappingFile, ResourceMap, Rule, line_of};
use super::path::{Cursor, TargetPath, prune};
use crate::canonical::ids;
use crate::record::{Position, QuirkLog, RecordError, SourceRecord};
use crate::validation::FhirSchema;
use minijinja::{
    Environment, Error, ErrorKind, Expression, UndefinedBehavior, Value as JinjaValue,
};
use serde_json::{Value, json};
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
}

/// A compiled mapping, ready to map records.
pub struct CompiledMapping<'e> {
    engine: &'e MappingEngine,
    resources: Vec<CompiledResource<'e>>,
}

struct CompiledResource<'e> {
    spec: &'e ResourceMap,
    id: Expression<'e, 'static>,
    when: Option<Expression<'e, 'static>>,
    rules: Vec<CompiledRule<'e>>,
}

struct CompiledRule<'e> {
    spec: &'e Rule,
    target: TargetPath,
    value: Expression<'e, 'static>,
    when: Option<Expression<'e, 'static>>,
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
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.add_global("source_system", source_system.clone());
        add_code_filter(&mut env, Arc::new(codes));
        add_list_filter(&mut env);
        add_date_filters(
            &mut env,
            file.source.ambiguous_dates,
            quirks.clone(),
            current.clone(),
        );
        add_reference_functions(&mut env, source_system.clone(), options.now.clone());
        Self {
            env,
            source_system,
            current,
            quirks: quirks.clone(),
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
                    let fields = source_fields(&value);
                    let variable = only_variable(&fields);
                    let sources = fields.into_iter().collect::<Vec<_>>().join(", ");
                    let constant = (rule_when.is_none())
                        .then(|| constant_value(rule.value.get_ref(), &value))
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
                resources.push(CompiledResource {
                    spec,
                    id,
                    when,
                    rules,
                });
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
    ) -> Option<Expression<'_, 'static>> {
        match self.env.compile_expression_owned(source.get_ref().clone()) {
            Ok(expr) => Some(expr),
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
        *self
            .engine
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = record.position.clone();
        let context = jinja_value(&record.context);
        let mut out = Vec::new();
        for resource in self
            .resources
            .iter()
            .filter(|r| r.spec.from.get_ref() == record.kind)
        {
            if let Some(built) = self.build(resource, record, &context)? {
                out.push(built);
            }
        }
        Ok(out)
    }

    /// Whether the mapping builds anything from records of this kind.
    pub fn handles(&self, kind: &str) -> bool {
        self.resources.iter().any(|r| r.spec.from.get_ref() == kind)
    }

    /// Every record field the mapping reads (for coverage).
    pub fn fields_read(&self) -> BTreeSet<String> {
        let mut fields = BTreeSet::new();
        for resource in &self.resources {
            fields.extend(source_fields(&resource.id));
            fields.extend(resource.when.iter().flat_map(source_fields));
            for rule in &resource.rules {
                fields.extend(source_fields(&rule.value));
                fields.extend(rule.when.iter().flat_map(source_fields));
            }
        }
        fields
    }

    fn build(
        &self,
        resource: &CompiledResource<'_>,
        record: &SourceRecord,
        context: &JinjaValue,
    ) -> Result<Option<Value>, RecordError> {
        let resource_type = resource.spec.resource_type.get_ref();
        let fail = |what: &str, message: String| {
            RecordError::new(record.position.clone().with_field(what.to_owned()), message)
        };
        if let Some(when) = &resource.when {
            let keep = when.eval(context).map_err(|e| {
                fail(
                    resource_type,
                    format!("{resource_type} 'when': {}", describe(&e)),
                )
            })?;
            if !keep.is_true() {
                return Ok(None);
            }
        }
        let source_id = resource.id.eval(context).map_err(|e| {
            fail(
                resource_type,
                format!("{resource_type}.id: {}", describe(&e)),
            )
        })?;
        let source_id = source_id
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| source_id.to_string());
        if source_id.trim().is_empty() || source_id == "none" {
            return Err(fail(
                resource_type,
                format!(
                    "{resource_type}.id ← {}: empty (expected the record's source id)",
                    resource.spec.id.get_ref()
                ),
            ));
        }
        let mut built = json!({ "resourceType": resource_type, "id": ids::resource_id(&self.engine.source_system, resource_type, &source_id) });
        if let Some(profile) = &resource.spec.profile {
            built["meta"] = json!({ "profile": [profile] });
        }
        let mut cursor = Cursor::default();
        for rule in &resource.rules {
            // A rule reading only a joined row (demographics) notes its date quirks at that row.
            let joined = joined_row(rule, record);
            if let Some(at) = joined {
                self.engine.set_current(at.clone());
            }
            let applied = apply_rule(rule, resource_type, context, &mut built, &mut cursor);
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

fn apply_rule(
    rule: &CompiledRule<'_>,
    resource_type: &str,
    context: &JinjaValue,
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
    if let Some(constant) = &rule.constant {
        return match constant {
            Some(json) => rule
                .target
                .set(built, json.clone(), cursor)
                .map_err(|why| format!("{}: {why}", label())),
            None if rule.spec.required => Err(format!(
                "{}: required value is empty (expected a value)",
                label()
            )),
            None => Ok(()),
        };
    }
    if let Some(when) = &rule.when
        && !when
            .eval(context)
            .map_err(|e| format!("{} ('when'): {}", label(), describe(&e)))?
            .is_true()
    {
        return Ok(());
    }
    let value = rule
        .value
        .eval(context)
        .map_err(|e| format!("{}: {}", label(), describe(&e)))?;
    let json = serde_json::to_value(&value).map_err(|e| format!("{}: {e}", label()))?;
    match prune(json) {
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
    let codes_of = tables.get(table).ok_or_else(|| {
        invalid(format!(
            "no code table '{table}' (expected codes/{table}.csv)"
        ))
    })?;
    Ok(match codes_of.lookup(&text) {
        Some(coding) => Looked::Found(JinjaValue::from_serialize(coding)),
        None => Looked::Unknown(format!(
            "unknown code '{text}' in code table '{table}' (expected one of: {})",
            codes_of.source_codes().join(", ")
        )),
    })
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

fn add_date_filters(
    env: &mut Environment<'static>,
    order: DateOrder,
    quirks: QuirkLog,
    current: Arc<Mutex<Position>>,
) {
    let note = move |quirk: Option<DateQuirk>| {
        let Some(quirk) = quirk else { return };
        let position = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
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
                return quirks.note(
                    format!(
                        "date-times without a UTC offset kept to their date (in records of {}; give one: | datetime('+10:00'))",
                        position.file
                    ),
                    position.line,
                );
            }
        };
        quirks.note(
            format!(
                "non-ISO dates read as {how} (in records of {})",
                position.file
            ),
            position.line,
        );
    };
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

impl MappingEngine {
    /// The record fields an expression reads, or why it does not compile.
    pub fn fields_of(&self, expression: &str) -> Result<BTreeSet<String>, String> {
        self.env
            .compile_expression_owned(expression.to_owned())
            .map(|e| source_fields(&e))
            .map_err(|e| e.to_string())
    }
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

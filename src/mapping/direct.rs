//! Mapping expressions evaluated directly on a record's JSON, without the template runtime.
//!
//! Most rules are paths (`user.givenName`), literals, object literals of paths, code lookups, dates and
//! references. Those are compiled from MiniJinja's own syntax tree into a small tree that is evaluated on
//! the record's `serde_json::Value`: no conversion of every record into template values, no VM. The
//! result is the value MiniJinja gives for the same expression:
//! - an expression using anything this module does not reproduce (a test, `in`, arithmetic, most built-in
//!   filters) is not compiled here and MiniJinja evaluates it, always;
//! - an evaluation that meets a value whose template semantics are not reproduced here (a decimal, `none`
//!   in a concatenation, an attribute of a list) stops with [`Stop::Defer`] and MiniJinja evaluates that
//!   rule for that record. Nothing is noted (date quirks) by an evaluation that defers.
//!
//! `tests::direct_and_template_evaluation_agree` evaluates every expression of the shipped mappings both
//! ways on generated records and compares.

use super::codes::{CodeTables, Coding};
use super::dates::{self, DateQuirk};
use super::member::Member;
use super::model::DateOrder;
use crate::canonical::ids;
use minijinja::machinery::ast::{self, BinOpKind, CallArg, CompareOpKind, Expr, UnaryOpKind};
use minijinja::value::ValueKind;
use serde_json::{Map, Value};

/// An expression compiled for direct evaluation.
#[derive(Debug)]
pub(super) struct Direct(Node);

#[derive(Debug)]
enum Node {
    /// A string, integer, boolean or `none` literal.
    Literal(Value),
    /// A list or object literal of literals only, built once when compiled: evaluating it gives a copy.
    Constant(Value),
    /// A variable: a record variable, else the `source_system` global.
    Var(Member),
    Attr(Box<Node>, Member),
    Index(Box<Node>, usize),
    List(Vec<Node>),
    /// An object literal: its entries in the order they are evaluated (as written), and that order's
    /// permutation into the order MiniJinja's maps keep their keys (sorted).
    Map(Vec<(String, Node)>, Vec<usize>, Shape),
    Concat(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Equals {
        left: Box<Node>,
        right: Box<Node>,
        negated: bool,
    },
    If {
        test: Box<Node>,
        then: Box<Node>,
        otherwise: Option<Box<Node>>,
    },
    Filter(Filter, Box<Node>),
    Reference {
        resource_type: String,
        id: Box<Node>,
        /// `fhir_id(...)`: the id alone, not `Type/id`.
        id_only: bool,
    },
    Key(Vec<Node>),
    Now,
}

/// An object literal's keys in their sorted order, each holding null: copied for each evaluation and
/// filled in place, so the keys are not hashed again (a copy keeps the hashes; an insert computes one).
#[derive(Debug)]
struct Shape(Map<String, Value>);

#[derive(Debug)]
enum Filter {
    Code(String),
    Lookup(String),
    Date(Option<String>),
    DateTime(Option<String>),
    Select,
    List,
    Lower,
}

/// Why a direct evaluation did not give a value.
#[derive(Debug)]
pub(super) enum Stop {
    /// A value whose template semantics are not reproduced here: evaluate with MiniJinja.
    Defer,
    /// The expression fails (an unknown code, a date that does not parse): the message MiniJinja gives.
    Fail(String),
}

/// What an evaluation reads besides the record.
pub(super) struct Scope<'a> {
    pub codes: &'a CodeTables,
    pub source_system: &'a str,
    pub now: &'a str,
    pub date_order: DateOrder,
}

/// A value during evaluation.
#[derive(Debug)]
pub(super) enum Val<'a> {
    Undefined,
    /// A value of the record.
    Json(&'a Value),
    Coding(&'a Coding),
    Text(String),
    Bool(bool),
    /// A list or object built by the expression (undefined items held as null).
    Built(Value),
}

/// The date quirks an evaluation met, noted by the caller once it succeeds.
pub(super) type Quirks = Vec<DateQuirk>;

impl Direct {
    /// Compile a MiniJinja expression, or `None` when it uses something not evaluated here.
    pub(super) fn compile(source: &str) -> Option<Direct> {
        super::engine::closed_early(source).ok()?;
        let parsed = minijinja::machinery::parse_expr(source).ok()?;
        compile(&parsed).map(Direct)
    }

    /// Evaluate on a record's values (a JSON object of variables).
    pub(super) fn eval<'a>(
        &'a self,
        record: &'a Value,
        scope: &'a Scope<'a>,
        quirks: &mut Quirks,
    ) -> Result<Val<'a>, Stop> {
        Evaluation {
            record,
            scope,
            quirks,
        }
        .eval(&self.0)
    }
}

fn compile(expr: &Expr<'_>) -> Option<Node> {
    Some(match expr {
        Expr::Var(var) => match var.id {
            "reference" | "references" | "fhir_id" | "key" | "now" => return None,
            name => Node::Var(Member::new(name)),
        },
        Expr::Const(constant) => Node::Literal(literal(&constant.value)?),
        Expr::GetAttr(attr) => Node::Attr(Box::new(compile(&attr.expr)?), Member::new(attr.name)),
        Expr::GetItem(item) => {
            let Expr::Const(index) = &item.subscript_expr else {
                return None;
            };
            let index = usize::try_from(i64::try_from(index.value.clone()).ok()?).ok()?;
            Node::Index(Box::new(compile(&item.expr)?), index)
        }
        Expr::List(list) => folded(Node::List(
            list.items.iter().map(compile).collect::<Option<_>>()?,
        )),
        Expr::Map(map) => folded(compile_map(map)?),
        Expr::BinOp(op) => compile_binop(op)?,
        Expr::Compare(compare) => compile_compare(compare)?,
        Expr::UnaryOp(op) => match op.op {
            UnaryOpKind::Not => Node::Not(Box::new(compile(&op.expr)?)),
            UnaryOpKind::Neg => return None,
        },
        Expr::IfExpr(branch) => Node::If {
            test: Box::new(compile(&branch.test_expr)?),
            then: Box::new(compile(&branch.true_expr)?),
            otherwise: match &branch.false_expr {
                Some(otherwise) => Some(Box::new(compile(otherwise)?)),
                None => None,
            },
        },
        Expr::Filter(filter) => compile_filter(filter)?,
        Expr::Call(call) => compile_call(call)?,
        Expr::Slice(_) | Expr::Test(_) => return None,
    })
}

/// A list or object literal whose items are all literals, as the value it always evaluates to (the one
/// [`Evaluation::eval`] builds for it: an object's keys in their sorted order); any other node as it is.
fn folded(node: Node) -> Node {
    let constant = |node: &Node| match node {
        Node::Literal(value) | Node::Constant(value) => Some(value.clone()),
        _ => None,
    };
    let value = match &node {
        Node::List(items) => items
            .iter()
            .map(constant)
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        Node::Map(entries, sorted, _) => sorted
            .iter()
            .map(|&at| {
                let (key, value) = entries.get(at)?;
                Some((key.clone(), constant(value)?))
            })
            .collect::<Option<Map<_, _>>>()
            .map(Value::Object),
        _ => None,
    };
    value.map_or(node, Node::Constant)
}

/// A literal MiniJinja constant as JSON: strings, integers, booleans and `none` only.
fn literal(value: &minijinja::Value) -> Option<Value> {
    match value.kind() {
        ValueKind::String => Some(Value::String(value.as_str()?.to_owned())),
        ValueKind::Bool => Some(Value::Bool(value.is_true())),
        ValueKind::None => Some(Value::Null),
        ValueKind::Number => i64::try_from(value.clone()).ok().map(Value::from),
        _ => None,
    }
}

fn compile_map(map: &ast::Map<'_>) -> Option<Node> {
    let mut entries = Vec::new();
    for (key, value) in map.keys.iter().zip(&map.values) {
        let Expr::Const(key) = key else { return None };
        if key.value.kind() != ValueKind::String {
            return None;
        }
        entries.push((key.value.as_str()?.to_owned(), compile(value)?));
    }
    let mut sorted: Vec<usize> = (0..entries.len()).collect();
    sorted.sort_by(|&a, &b| entries[a].0.cmp(&entries[b].0));
    if sorted
        .windows(2)
        .any(|pair| entries[pair[0]].0 == entries[pair[1]].0)
    {
        return None;
    }
    let shape = sorted
        .iter()
        .filter_map(|&at| entries.get(at))
        .map(|(key, _)| (key.clone(), Value::Null))
        .collect();
    Some(Node::Map(entries, sorted, Shape(shape)))
}

fn compile_binop(op: &ast::BinOp<'_>) -> Option<Node> {
    let left = Box::new(compile(&op.left)?);
    let right = Box::new(compile(&op.right)?);
    Some(match op.op {
        BinOpKind::Concat => Node::Concat(left, right),
        BinOpKind::ScOr => Node::Or(left, right),
        BinOpKind::ScAnd => Node::And(left, right),
        BinOpKind::Eq => Node::Equals {
            left,
            right,
            negated: false,
        },
        BinOpKind::Ne => Node::Equals {
            left,
            right,
            negated: true,
        },
        _ => return None,
    })
}

fn compile_compare(compare: &ast::Compare<'_>) -> Option<Node> {
    let [op] = compare.ops.as_slice() else {
        return None;
    };
    let negated = match op.op {
        CompareOpKind::Eq => false,
        CompareOpKind::Ne => true,
        _ => return None,
    };
    Some(Node::Equals {
        left: Box::new(compile(&compare.expr)?),
        right: Box::new(compile(&op.expr)?),
        negated,
    })
}

/// The constant string arguments of a filter or function (`code('agency')`).
fn string_args(args: &[CallArg<'_>]) -> Option<Vec<String>> {
    args.iter()
        .map(|arg| match arg {
            CallArg::Pos(Expr::Const(c)) if c.value.kind() == ValueKind::String => {
                c.value.as_str().map(str::to_owned)
            }
            _ => None,
        })
        .collect()
}

fn compile_filter(filter: &ast::Filter<'_>) -> Option<Node> {
    let input = Box::new(compile(filter.expr.as_ref()?)?);
    let mut args = string_args(&filter.args)?.into_iter();
    let (first, more) = (args.next(), args.next().is_some());
    if more {
        return None;
    }
    let filter = match (filter.name, first) {
        ("code", Some(table)) => Filter::Code(table),
        ("lookup", Some(table)) => Filter::Lookup(table),
        ("date", format) => Filter::Date(format),
        ("datetime", offset) => Filter::DateTime(offset),
        ("select", None) => Filter::Select,
        ("list", None) => Filter::List,
        ("lower", None) => Filter::Lower,
        _ => return None,
    };
    Some(Node::Filter(filter, input))
}

fn compile_call(call: &ast::Call<'_>) -> Option<Node> {
    let ast::CallType::Function(name) = call.identify_call() else {
        return None;
    };
    let positional = |arg: &CallArg<'_>| match arg {
        CallArg::Pos(expr) => compile(expr),
        _ => None,
    };
    match (name, call.args.as_slice()) {
        ("now", []) => Some(Node::Now),
        ("key", parts) if !parts.is_empty() => Some(Node::Key(
            parts.iter().map(positional).collect::<Option<_>>()?,
        )),
        (name @ ("reference" | "fhir_id"), [resource_type, id]) => {
            let resource_type = string_args(std::slice::from_ref(resource_type))?.pop()?;
            Some(Node::Reference {
                resource_type,
                id: Box::new(positional(id)?),
                id_only: name == "fhir_id",
            })
        }
        _ => None,
    }
}

struct Evaluation<'a, 'q> {
    record: &'a Value,
    scope: &'a Scope<'a>,
    quirks: &'q mut Quirks,
}

impl<'a> Evaluation<'a, '_> {
    fn eval(&mut self, node: &'a Node) -> Result<Val<'a>, Stop> {
        Ok(match node {
            Node::Literal(value) => literal_value(value),
            Node::Constant(value) => Val::Built(value.clone()),
            Node::Var(name) => match self.record.as_object().and_then(|record| name.find(record)) {
                Some(value) => Val::Json(value),
                None if name.name() == "source_system" => {
                    Val::Text(self.scope.source_system.to_owned())
                }
                None => Val::Undefined,
            },
            Node::Attr(base, name) => attribute(self.eval(base)?, name)?,
            Node::Index(base, index) => match self.eval(base)? {
                Val::Undefined => Val::Undefined,
                Val::Json(Value::Array(items)) => {
                    items.get(*index).map_or(Val::Undefined, Val::Json)
                }
                _ => return Err(Stop::Defer),
            },
            Node::List(items) => Val::Built(Value::Array(
                items
                    .iter()
                    .map(|item| self.eval(item).and_then(to_json))
                    .collect::<Result<_, _>>()?,
            )),
            Node::Map(entries, sorted, Shape(shape)) => {
                let mut values = Vec::with_capacity(entries.len());
                for (_, value) in entries {
                    values.push(Some(to_json(self.eval(value)?)?));
                }
                let mut map = shape.clone();
                for (slot, &at) in map.values_mut().zip(sorted) {
                    if let Some(value) = values.get_mut(at).and_then(Option::take) {
                        *slot = value;
                    }
                }
                Val::Built(Value::Object(map))
            }
            Node::Concat(left, right) => {
                let mut text = display(&self.eval(left)?)?;
                text.push_str(&display(&self.eval(right)?)?);
                Val::Text(text)
            }
            Node::Or(left, right) => {
                let left = self.eval(left)?;
                if truthy(&left)? {
                    left
                } else {
                    self.eval(right)?
                }
            }
            Node::And(left, right) => {
                let left = self.eval(left)?;
                if truthy(&left)? {
                    self.eval(right)?
                } else {
                    left
                }
            }
            Node::Not(value) => Val::Bool(!truthy(&self.eval(value)?)?),
            Node::Equals {
                left,
                right,
                negated,
            } => Val::Bool(equal(&self.eval(left)?, &self.eval(right)?)? != *negated),
            Node::If {
                test,
                then,
                otherwise,
            } => {
                if truthy(&self.eval(test)?)? {
                    self.eval(then)?
                } else if let Some(otherwise) = otherwise {
                    self.eval(otherwise)?
                } else {
                    Val::Undefined
                }
            }
            Node::Filter(filter, input) => {
                let input = self.eval(input)?;
                self.filter(filter, input)?
            }
            Node::Reference {
                resource_type,
                id,
                id_only,
            } => {
                let id = self.eval(id)?;
                if is_empty(&id) {
                    Val::Undefined
                } else if *id_only {
                    let text = display(&id)?;
                    Val::Text(ids::resource_id(
                        self.scope.source_system,
                        resource_type,
                        &text,
                    ))
                } else {
                    let text = display(&id)?;
                    Val::Text(ids::reference(
                        self.scope.source_system,
                        resource_type,
                        &text,
                    ))
                }
            }
            Node::Key(parts) => {
                let values = parts
                    .iter()
                    .map(|part| self.eval(part))
                    .collect::<Result<Vec<_>, _>>()?;
                if values.iter().all(is_empty) {
                    Val::Undefined
                } else {
                    let texts = values
                        .iter()
                        .map(|v| {
                            if is_empty(v) {
                                Ok(String::new())
                            } else {
                                display(v)
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Val::Text(ids::key(texts.iter().map(String::as_str)))
                }
            }
            Node::Now => Val::Text(self.scope.now.to_owned()),
        })
    }

    fn filter(&mut self, filter: &'a Filter, input: Val<'a>) -> Result<Val<'a>, Stop> {
        Ok(match filter {
            Filter::Code(table) | Filter::Lookup(table) => {
                if is_empty(&input) {
                    return Ok(Val::Undefined);
                }
                let text = display(&input)?;
                let Some(codes) = self.scope.codes.get(table) else {
                    return Err(Stop::Fail(super::engine::no_table(table)));
                };
                match (codes.lookup(&text), filter) {
                    (Some(coding), _) => Val::Coding(coding),
                    (None, Filter::Lookup(_)) => Val::Undefined,
                    (None, _) => {
                        return Err(Stop::Fail(super::engine::unknown_code(&text, table, codes)));
                    }
                }
            }
            Filter::Date(format) => {
                if is_empty(&input) {
                    return Ok(Val::Undefined);
                }
                let text = display(&input)?;
                let parsed = match format {
                    Some(format) => dates::parse_date_with(&text, format),
                    None => dates::parse_date(&text, self.scope.date_order).map(|(date, quirk)| {
                        self.quirks.extend(quirk);
                        date
                    }),
                };
                Val::Text(parsed.map_err(Stop::Fail)?)
            }
            Filter::DateTime(offset) => {
                if is_empty(&input) {
                    return Ok(Val::Undefined);
                }
                let (text, quirk) = dates::parse_datetime(
                    &display(&input)?,
                    self.scope.date_order,
                    offset.as_deref(),
                )
                .map_err(Stop::Fail)?;
                self.quirks.extend(quirk);
                Val::Text(text)
            }
            Filter::Select => {
                let items = match &input {
                    Val::Json(Value::Array(items)) => items,
                    Val::Built(Value::Array(items)) => items,
                    _ => return Err(Stop::Defer),
                };
                let mut kept = Vec::new();
                for item in items {
                    if truthy(&Val::Json(item))? {
                        kept.push(to_json(Val::Json(item))?);
                    }
                }
                Val::Built(Value::Array(kept))
            }
            Filter::List => match input {
                Val::Built(Value::Array(items)) => Val::Built(Value::Array(items)),
                Val::Json(json @ Value::Array(_)) => Val::Built(record_json(json)?),
                _ => return Err(Stop::Defer),
            },
            Filter::Lower => match input {
                Val::Json(Value::String(text)) => Val::Text(text.to_lowercase()),
                Val::Text(text) => Val::Text(text.to_lowercase()),
                _ => return Err(Stop::Defer),
            },
        })
    }
}

fn literal_value(value: &Value) -> Val<'_> {
    match value {
        Value::Bool(b) => Val::Bool(*b),
        other => Val::Json(other),
    }
}

/// `base.name`, chainable on undefined as the mapping environment is.
fn attribute<'a>(base: Val<'a>, member: &Member) -> Result<Val<'a>, Stop> {
    let name = member.name();
    Ok(match base {
        Val::Undefined => Val::Undefined,
        Val::Json(Value::Object(map)) => member.find(map).map_or(Val::Undefined, Val::Json),
        Val::Coding(coding) => {
            let field = match name {
                "system" => &coding.system,
                "code" => &coding.code,
                "display" => &coding.display,
                _ => return Ok(Val::Undefined),
            };
            // The Coding reaches templates serialized, its empty fields left out.
            if field.is_empty() && name != "code" {
                Val::Undefined
            } else {
                Val::Text(field.clone())
            }
        }
        _ => return Err(Stop::Defer),
    })
}

/// Empty as the mapping filters see it: undefined, none, or blank text.
pub(super) fn is_empty(value: &Val<'_>) -> bool {
    match value {
        Val::Undefined | Val::Json(Value::Null) => true,
        Val::Json(Value::String(text)) | Val::Text(text) => crate::text::is_blank(text),
        _ => false,
    }
}

/// A template value's truth (`when`, `or`, `if`).
pub(super) fn truthy(value: &Val<'_>) -> Result<bool, Stop> {
    Ok(match value {
        Val::Undefined => false,
        Val::Bool(b) => *b,
        Val::Coding(_) => true,
        Val::Text(text) => !text.is_empty(),
        Val::Json(json) => json_truthy(json)?,
        Val::Built(json) => json_truthy(json)?,
    })
}

fn json_truthy(json: &Value) -> Result<bool, Stop> {
    Ok(match json {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(number) => integer(number)? != 0,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    })
}

/// A value as text, as a template prints it (strings, integers and booleans only; `True`, as Python).
fn display(value: &Val<'_>) -> Result<String, Stop> {
    Ok(match value {
        Val::Undefined => String::new(),
        Val::Text(text) | Val::Json(Value::String(text)) => text.clone(),
        Val::Json(Value::Number(number)) => integer(number)?.to_string(),
        Val::Bool(b) | Val::Json(Value::Bool(b)) => if *b { "True" } else { "False" }.to_owned(),
        _ => return Err(Stop::Defer),
    })
}

/// `==` between texts, or a text and nothing.
fn equal(left: &Val<'_>, right: &Val<'_>) -> Result<bool, Stop> {
    let text = |value: &Val<'_>| match value {
        Val::Text(text) | Val::Json(Value::String(text)) => Some(text.clone()),
        _ => None,
    };
    let nothing = |value: &Val<'_>| matches!(value, Val::Undefined | Val::Json(Value::Null));
    match (text(left), text(right)) {
        (Some(a), Some(b)) => Ok(a == b),
        (Some(_), None) if nothing(right) => Ok(false),
        (None, Some(_)) if nothing(left) => Ok(false),
        _ => Err(Stop::Defer),
    }
}

/// An integer as the templates read it; a decimal defers (its template form depends on its text).
fn integer(number: &serde_json::Number) -> Result<i128, Stop> {
    let exact = number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from));
    match exact {
        Some(value) if value.to_string() == number.to_string() => Ok(value),
        _ => Err(Stop::Defer),
    }
}

/// The JSON a value serializes to through the template runtime: objects of the record with their keys
/// sorted (template maps are ordered maps), undefined as null.
pub(super) fn to_json(value: Val<'_>) -> Result<Value, Stop> {
    Ok(match value {
        Val::Undefined => Value::Null,
        Val::Bool(b) => Value::Bool(b),
        Val::Text(text) => Value::String(text),
        Val::Built(json) => json,
        Val::Coding(coding) => serde_json::to_value(coding).map_err(|_| Stop::Defer)?,
        Val::Json(json) => record_json(json)?,
    })
}

fn record_json(json: &Value) -> Result<Value, Stop> {
    Ok(match json {
        Value::Number(number) => {
            integer(number)?;
            Value::Number(number.clone())
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(record_json).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => {
            let mut entries = map
                .iter()
                .map(|(k, v)| Ok((k.clone(), record_json(v)?)))
                .collect::<Result<Vec<_>, Stop>>()?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        other => other.clone(),
    })
}

/// A value's text as an id expression gives it (`none` for none, as MiniJinja prints it).
pub(super) fn id_text(value: &Val<'_>) -> Result<String, Stop> {
    match value {
        Val::Json(Value::Null) => Ok("none".to_owned()),
        other => display(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compiled(source: &str) -> Node {
        Direct::compile(source).unwrap().0
    }

    /// A list or object of literals is built when compiled, its keys in the order evaluation gives them;
    /// one holding anything else is evaluated each time.
    #[test]
    fn a_literal_object_is_built_once() {
        let Node::Constant(value) = compiled("{'b': 1, 'a': ['x', none, true], 'c': {'z': 'y'}}")
        else {
            panic!("not folded");
        };
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            r#"{"a":["x",null,true],"b":1,"c":{"z":"y"}}"#
        );
        assert!(matches!(compiled("{'a': 'x', 'b': row.b}"), Node::Map(..)));
        assert!(matches!(compiled("['x', row.b]"), Node::List(..)));
        let record = json!({});
        let scope = Scope {
            codes: &CodeTables::default(),
            source_system: "urn:s",
            now: "2026-01-01",
            date_order: DateOrder::default(),
        };
        let direct = Direct::compile("[{'k': 'v'}, {'k': 'v'}]").unwrap();
        let Ok(Val::Built(built)) = direct.eval(&record, &scope, &mut Vec::new()) else {
            panic!("no value");
        };
        assert_eq!(built, json!([{"k": "v"}, {"k": "v"}]));
    }
}

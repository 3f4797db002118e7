//! The FHIRPath evaluator over `serde_json::Value`: collections of borrowed JSON nodes and computed
//! scalars. Nothing of the document is cloned: a node is a `&Value`, a string taken from the document
//! is borrowed. FHIR JSON conventions are applied while navigating: arrays are flattened, a choice
//! element (`value[x]`, `abatement[x]`) is found from its base name, a type name at the start of a path
//! (`Bundle.entry`) filters on `resourceType`.
//!
//! Without a type model, types are judged from the JSON: a resource type by `resourceType`, the
//! primitive types by the JSON kind (every string may be a `uri`/`canonical`/`code`), and strings that
//! look like FHIR dates are compared as dates (at the precision both have; an undecidable comparison
//! is empty, as FHIRPath says).

use super::EvalError;
use super::parser::{BinOp, Call, EnvVar, Expr, Func, TypeOp, compile_regex};
use crate::members::Members;
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;

/// One item of a collection.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    /// A node of the document (an object, or a primitive value).
    Node(&'a Value),
    /// A computed boolean.
    Bool(bool),
    /// A computed number.
    Number(f64),
    /// A computed string (borrowed when it is a literal or part of the document).
    Str(Cow<'a, str>),
}

/// A FHIRPath collection.
pub type Collection<'a> = Vec<Item<'a>>;

/// What `%resource`, `%rootResource` and `resolve()` see.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The resource holding the element checked.
    pub resource: &'a Value,
    /// Its container when it is contained, else the resource itself.
    pub root_resource: &'a Value,
    /// The Bundle it travels in, for `resolve()`.
    pub bundle: Option<&'a Value>,
    /// The element the evaluation started from (`%context`).
    pub context: &'a Value,
}

/// A scalar view of an item.
#[derive(Debug, Clone, Copy)]
enum Scalar<'s> {
    Bool(bool),
    Number(f64),
    Str(&'s str),
}

impl<'a> Item<'a> {
    fn scalar(&self) -> Option<Scalar<'_>> {
        match self {
            Item::Bool(b) | Item::Node(Value::Bool(b)) => Some(Scalar::Bool(*b)),
            Item::Number(n) => Some(Scalar::Number(*n)),
            Item::Node(Value::Number(n)) => n.as_f64().map(Scalar::Number),
            Item::Str(s) => Some(Scalar::Str(s)),
            Item::Node(Value::String(s)) => Some(Scalar::Str(s)),
            Item::Node(_) => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Item::Str(s) => Some(s),
            Item::Node(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// A string item borrowing from the document when it can.
    fn to_str_item(&self) -> Option<Cow<'a, str>> {
        match self {
            Item::Str(s) => Some(s.clone()),
            Item::Node(Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
            Item::Node(Value::Number(n)) => Some(Cow::Owned(n.to_string())),
            Item::Number(n) => Some(Cow::Owned(n.to_string())),
            Item::Bool(b) | Item::Node(Value::Bool(b)) => Some(Cow::Owned(b.to_string())),
            Item::Node(_) => None,
        }
    }
}

/// Evaluates compiled expressions in one environment.
pub struct Evaluator<'a> {
    /// The environment.
    pub env: Env<'a>,
    /// Items still allowed to be produced (see [`MAX_WORK`]).
    budget: std::cell::Cell<usize>,
}

/// How many items one evaluation may produce: a hostile expression (`descendants()` nested in
/// `select()`s) is stopped, not left to run for ever. The invariants use a few hundred.
pub const MAX_WORK: usize = 1_000_000;

/// The longest string an evaluation may build (`replace()` and `&` nested cannot grow without end).
pub const MAX_STRING: usize = 1 << 20;

type Res<'a> = Result<Collection<'a>, EvalError>;

impl<'a> Evaluator<'a> {
    /// An evaluator with the full work budget.
    pub fn new(env: Env<'a>) -> Self {
        Self {
            env,
            budget: std::cell::Cell::new(MAX_WORK),
        }
    }

    fn spend(&self, items: usize) -> Result<(), EvalError> {
        let left = self
            .budget
            .get()
            .checked_sub(items + 1)
            .ok_or(EvalError::TooCostly)?;
        self.budget.set(left);
        Ok(())
    }

    /// Evaluate `expr` with `input` as its focus (`$this`).
    pub fn eval(&self, expr: &'a Expr, input: &[Item<'a>]) -> Res<'a> {
        let out = self.eval_unbudgeted(expr, input)?;
        self.spend(out.len())?;
        Ok(out)
    }

    fn eval_unbudgeted(&self, expr: &'a Expr, input: &[Item<'a>]) -> Res<'a> {
        match expr {
            Expr::Empty => Ok(Vec::new()),
            Expr::Bool(b) => Ok(vec![Item::Bool(*b)]),
            Expr::Number(n) => Ok(vec![Item::Number(*n)]),
            Expr::Str(s) => Ok(vec![Item::Str(Cow::Borrowed(s))]),
            Expr::This => Ok(input.to_vec()),
            Expr::Env(var) => Ok(self.env_var(*var)),
            Expr::Ident(name) => Ok(navigate(input, name, true)),
            Expr::Member(target, name) => Ok(navigate(&self.eval(target, input)?, name, false)),
            Expr::Call(call) => self.call(call, input),
            Expr::Index(target, index) => {
                let items = self.eval(target, input)?;
                let index = self.eval(index, input)?;
                Ok(match singleton_number(&index, "an index")? {
                    Some(i) if i >= 0.0 => items.into_iter().nth(i as usize).into_iter().collect(),
                    _ => Vec::new(),
                })
            }
            Expr::Negate(inner) => {
                let value = self.eval(inner, input)?;
                Ok(singleton_number(&value, "unary -")?
                    .map(|n| Item::Number(-n))
                    .into_iter()
                    .collect())
            }
            Expr::Binary(op, left, right) => self.binary(*op, left, right, input),
            Expr::TypeOp(op, target, type_name) => {
                let items = self.eval(target, input)?;
                Ok(type_op(*op, &items, type_name)?)
            }
        }
    }

    /// Evaluate `expr` as a boolean (singleton evaluation), without building the collections of the
    /// boolean operators, `exists()`, `empty()`, `not()`, `hasValue()` and comparisons of counts.
    pub fn eval_bool(&self, expr: &'a Expr, input: &[Item<'a>]) -> Result<Option<bool>, EvalError> {
        match expr {
            Expr::Bool(b) => Ok(Some(*b)),
            Expr::Binary(op @ (BinOp::And | BinOp::Or | BinOp::Implies), left, right) => {
                self.logic(*op, left, right, input)
            }
            Expr::Binary(op, left, right) if is_comparison(*op) => {
                let (l, r) = (self.side(left, input)?, self.side(right, input)?);
                match (l, r) {
                    (Side::Count(a), Side::Count(b)) => Ok(Some(compare_counts(*op, a, b))),
                    (l, r) => to_bool(&binary_values(*op, l.items(), r.items())?, "a comparison"),
                }
            }
            Expr::Call(call) if call.args.is_empty() => self.call_bool(call, input),
            _ => to_bool(&self.eval(expr, input)?, "a condition"),
        }
    }

    fn call_bool(&self, call: &'a Call, input: &[Item<'a>]) -> Result<Option<bool>, EvalError> {
        if !call.args.is_empty()
            || !matches!(
                call.func,
                Func::Exists | Func::Empty | Func::Not | Func::HasValue
            )
        {
            return to_bool(&self.call(call, input)?, "a condition");
        }
        let owned;
        let focus = match &call.target {
            Some(Expr::Call(inner)) if call.func == Func::Not => {
                return Ok(self.call_bool(inner, input)?.map(|b| !b));
            }
            Some(target) => {
                owned = self.eval(target, input)?;
                owned.as_slice()
            }
            None => input,
        };
        Ok(match call.func {
            Func::Exists => Some(!focus.is_empty()),
            Func::Empty => Some(focus.is_empty()),
            Func::HasValue => Some(focus.len() == 1 && focus[0].scalar().is_some()),
            _ => to_bool(focus, "not()")?.map(|b| !b),
        })
    }

    /// One side of a comparison: a count is kept as a number, anything else evaluated.
    fn side(&self, expr: &'a Expr, input: &[Item<'a>]) -> Result<Side<'a>, EvalError> {
        if let Expr::Call(call) = expr
            && call.func == Func::Count
        {
            if let Some(count) = self.count_without_collecting(call, input)? {
                return Ok(Side::Count(count));
            }
            return Ok(Side::Count(match &call.target {
                Some(target) => self.eval(target, input)?.len(),
                None => input.len(),
            }));
        }
        if let Expr::Number(n) = expr
            && n.fract() == 0.0
            && *n >= 0.0
        {
            return Ok(Side::Count(*n as usize));
        }
        Ok(Side::Items(self.eval(expr, input)?))
    }

    fn env_var(&self, var: EnvVar) -> Collection<'a> {
        match var {
            EnvVar::Resource => vec![Item::Node(self.env.resource)],
            EnvVar::RootResource => vec![Item::Node(self.env.root_resource)],
            EnvVar::Context => vec![Item::Node(self.env.context)],
            EnvVar::Ucum => vec![Item::Str(Cow::Borrowed("http://unitsofmeasure.org"))],
            EnvVar::Sct => vec![Item::Str(Cow::Borrowed("http://snomed.info/sct"))],
            EnvVar::Loinc => vec![Item::Str(Cow::Borrowed("http://loinc.org"))],
        }
    }

    fn binary(&self, op: BinOp, left: &'a Expr, right: &'a Expr, input: &[Item<'a>]) -> Res<'a> {
        if matches!(op, BinOp::And | BinOp::Or | BinOp::Implies) {
            return self.short_circuit(op, left, right, input);
        }
        let l = self.eval(left, input)?;
        let r = self.eval(right, input)?;
        binary_values(op, l, r)
    }

    /// `and`, `or`, `implies`: the right side is evaluated only when it can change the answer.
    fn short_circuit(
        &self,
        op: BinOp,
        left: &'a Expr,
        right: &'a Expr,
        input: &[Item<'a>],
    ) -> Res<'a> {
        Ok(self
            .logic(op, left, right, input)?
            .map(Item::Bool)
            .into_iter()
            .collect())
    }

    fn logic(
        &self,
        op: BinOp,
        left: &'a Expr,
        right: &'a Expr,
        input: &[Item<'a>],
    ) -> Result<Option<bool>, EvalError> {
        let l = self.eval_bool(left, input)?;
        let decided = match (op, l) {
            (BinOp::And, Some(false)) => Some(false),
            (BinOp::Or, Some(true)) => Some(true),
            (BinOp::Implies, Some(false)) => Some(true),
            _ => None,
        };
        if decided.is_some() {
            return Ok(decided);
        }
        let r = self.eval_bool(right, input)?;
        Ok(match op {
            BinOp::And => match (l, r) {
                (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            BinOp::Or => match (l, r) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            _ => match (l, r) {
                (Some(true), r) => r,
                (None, Some(true)) => Some(true),
                _ => None,
            },
        })
    }

    fn call(&self, call: &'a Call, input: &[Item<'a>]) -> Res<'a> {
        if let Some(count) = self.count_without_collecting(call, input)? {
            return Ok(vec![Item::Number(count as f64)]);
        }
        let focus = match &call.target {
            Some(target) => self.eval(target, input)?,
            None => input.to_vec(),
        };
        match call.func {
            Func::Exists if !call.args.is_empty() => {
                let kept = self.filter(&call.args[0], focus)?;
                Ok(vec![Item::Bool(!kept.is_empty())])
            }
            Func::Where => self.filter(&call.args[0], focus),
            Func::Select => self.select(&call.args[0], focus),
            Func::All => self.all(&call.args[0], focus),
            Func::Iif => self.iif(call, &focus, input),
            Func::Trace => Ok(focus),
            Func::Matches => self.matches(call, &focus, input),
            _ => {
                let args = call
                    .args
                    .iter()
                    .map(|arg| self.eval(arg, input))
                    .collect::<Result<Vec<_>, _>>()?;
                self.function(call.func, focus, args)
            }
        }
    }

    /// `x.children().count()` counted without building the children collection (ele-1 runs on
    /// every element).
    fn count_without_collecting(
        &self,
        call: &'a Call,
        input: &[Item<'a>],
    ) -> Result<Option<usize>, EvalError> {
        let Some(Expr::Call(inner)) = &call.target else {
            return Ok(None);
        };
        if call.func != Func::Count || inner.func != Func::Children {
            return Ok(None);
        }
        Ok(Some(match &inner.target {
            Some(target) => count_children(&self.eval(target, input)?),
            None => count_children(input),
        }))
    }

    fn filter(&self, criterion: &'a Expr, focus: Collection<'a>) -> Res<'a> {
        let mut kept = Vec::new();
        for item in focus {
            let this = std::slice::from_ref(&item);
            if to_bool(&self.eval(criterion, this)?, "where()")? == Some(true) {
                kept.push(item);
            }
        }
        Ok(kept)
    }

    fn select(&self, projection: &'a Expr, focus: Collection<'a>) -> Res<'a> {
        let mut out = Vec::new();
        for item in focus {
            out.extend(self.eval(projection, std::slice::from_ref(&item))?);
        }
        Ok(out)
    }

    fn all(&self, criterion: &'a Expr, focus: Collection<'a>) -> Res<'a> {
        for item in focus {
            let this = std::slice::from_ref(&item);
            if to_bool(&self.eval(criterion, this)?, "all()")? != Some(true) {
                return Ok(vec![Item::Bool(false)]);
            }
        }
        Ok(vec![Item::Bool(true)])
    }

    fn iif(&self, call: &'a Call, focus: &[Item<'a>], input: &[Item<'a>]) -> Res<'a> {
        let this = if call.target.is_some() { focus } else { input };
        let condition = to_bool(&self.eval(&call.args[0], this)?, "iif()")?;
        match (condition, call.args.get(2)) {
            (Some(true), _) => self.eval(&call.args[1], this),
            (_, Some(otherwise)) => self.eval(otherwise, this),
            _ => Ok(Vec::new()),
        }
    }

    fn matches(&self, call: &'a Call, focus: &[Item<'a>], input: &[Item<'a>]) -> Res<'a> {
        let Some(text) = singleton_str(focus, "matches()")? else {
            return Ok(Vec::new());
        };
        let regex = match &call.regex {
            Some(regex) => regex.clone(),
            None => {
                let pattern = self.eval(&call.args[0], input)?;
                let Some(pattern) = singleton_str(&pattern, "matches()")? else {
                    return Ok(Vec::new());
                };
                compile_regex(pattern, 0).map_err(|e| EvalError::BadPattern(e.to_string()))?
            }
        };
        Ok(vec![Item::Bool(regex.is_match(text))])
    }

    fn function(&self, func: Func, focus: Collection<'a>, args: Vec<Collection<'a>>) -> Res<'a> {
        let arg = |i: usize| args.get(i).map(Vec::as_slice).unwrap_or_default();
        let boolean = |b: bool| Ok(vec![Item::Bool(b)]);
        match func {
            Func::Empty => boolean(focus.is_empty()),
            Func::Exists => boolean(!focus.is_empty()),
            Func::Count => Ok(vec![Item::Number(focus.len() as f64)]),
            Func::Not => Ok(to_bool(&focus, "not()")?
                .map(|b| Item::Bool(!b))
                .into_iter()
                .collect()),
            Func::AllTrue => boolean(focus.iter().all(|i| is_bool(i, true))),
            Func::AnyTrue => boolean(focus.iter().any(|i| is_bool(i, true))),
            Func::AllFalse => boolean(focus.iter().all(|i| is_bool(i, false))),
            Func::AnyFalse => boolean(focus.iter().any(|i| is_bool(i, false))),
            Func::HasValue => boolean(focus.len() == 1 && focus[0].scalar().is_some()),
            Func::Children => Ok(children(&focus)),
            Func::Descendants => Ok(descendants(&focus)),
            Func::Distinct => Ok(distinct(focus)),
            Func::IsDistinct => boolean(is_distinct(&focus)),
            Func::Single if focus.len() > 1 => Err(EvalError::NotSingleton {
                what: "single()",
                count: focus.len(),
            }),
            Func::Single | Func::First => Ok(focus.into_iter().take(1).collect()),
            Func::Last => Ok(focus.into_iter().last().into_iter().collect()),
            Func::Tail => Ok(focus.into_iter().skip(1).collect()),
            Func::Skip => Ok(focus.into_iter().skip(count_arg(arg(0))?).collect()),
            Func::Take => Ok(focus.into_iter().take(count_arg(arg(0))?).collect()),
            Func::Union => Ok(distinct(focus.into_iter().chain(arg(0).to_vec()).collect())),
            Func::Combine => Ok(focus.into_iter().chain(arg(0).to_vec()).collect()),
            Func::Intersect => Ok(distinct(
                focus.into_iter().filter(|i| contains(arg(0), i)).collect(),
            )),
            Func::Exclude => Ok(focus.into_iter().filter(|i| !contains(arg(0), i)).collect()),
            Func::SubsetOf => boolean(focus.iter().all(|i| contains(arg(0), i))),
            Func::SupersetOf => boolean(arg(0).iter().all(|i| contains(&focus, i))),
            Func::OfType | Func::As | Func::Is => {
                let type_name = singleton_str(arg(0), "a type name")?.unwrap_or_default();
                // as() filters like ofType(): R4's dom-3 applies it to whole collections.
                let op = match func {
                    Func::OfType | Func::As => None,
                    _ => Some(TypeOp::Is),
                };
                match op {
                    Some(op) => type_op(op, &focus, type_name),
                    None => Ok(focus
                        .into_iter()
                        .filter(|i| is_type(i, type_name))
                        .collect()),
                }
            }
            Func::Extension => Ok(extensions(&focus, arg(0))?),
            Func::Resolve => Ok(focus.iter().filter_map(|i| self.resolve(i)).collect()),
            _ => string_function(func, &focus, &args),
        }
    }

    /// A reference resolved inside the document: `#id` in the root resource's `contained`, anything
    /// else against the fullUrl or `Type/id` of the Bundle's entries. Nothing is fetched.
    fn resolve(&self, item: &Item<'a>) -> Option<Item<'a>> {
        let reference = match item {
            Item::Node(Value::Object(map)) => map.member("reference")?.as_str()?,
            Item::Node(Value::String(s)) => s.as_str(),
            _ => return None,
        };
        if let Some(id) = reference.strip_prefix('#') {
            if id.is_empty() {
                return Some(Item::Node(self.env.root_resource));
            }
            let contained = self.env.root_resource.member("contained")?.as_array()?;
            return contained
                .iter()
                .find(|r| r.member("id").and_then(Value::as_str) == Some(id))
                .map(Item::Node);
        }
        let entries = self.env.bundle?.member("entry")?.as_array()?;
        entries.iter().find_map(|entry| {
            let resource = entry.member("resource")?;
            let full_url = entry.member("fullUrl").and_then(Value::as_str);
            let matches = full_url == Some(reference) || {
                let kind = resource.member("resourceType")?.as_str()?;
                let id = resource.member("id")?.as_str()?;
                reference
                    .strip_suffix(id)
                    .and_then(|r| r.strip_suffix('/'))
                    .is_some_and(|r| r == kind || r.ends_with(&format!("/{kind}")))
            };
            matches.then_some(Item::Node(resource))
        })
    }
}

/// A side of a comparison.
enum Side<'a> {
    Count(usize),
    Items(Collection<'a>),
}

impl<'a> Side<'a> {
    fn items(self) -> Collection<'a> {
        match self {
            Side::Count(n) => vec![Item::Number(n as f64)],
            Side::Items(items) => items,
        }
    }
}

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne
    )
}

fn compare_counts(op: BinOp, a: usize, b: usize) -> bool {
    match op {
        BinOp::Lt => a < b,
        BinOp::Le => a <= b,
        BinOp::Gt => a > b,
        BinOp::Ge => a >= b,
        BinOp::Eq => a == b,
        _ => a != b,
    }
}

/// Navigate `name` from every item of `input`. At the start of a path (`first`), a type name keeps the
/// resources of that type (`Bundle.entry` evaluated on a Bundle).
fn navigate<'a>(input: &[Item<'a>], name: &str, first: bool) -> Collection<'a> {
    let mut out = Vec::new();
    for item in input {
        let Item::Node(Value::Object(map)) = item else {
            continue;
        };
        if first && name.starts_with(|c: char| c.is_ascii_uppercase()) {
            if map.member("resourceType").and_then(Value::as_str) == Some(name) {
                out.push(item.clone());
            }
            continue;
        }
        match map.member(name) {
            Some(value) => push_flat(&mut out, value),
            None => {
                // A choice element: `value` finds valueString, valueQuantity...
                for (key, value) in map {
                    if key.len() > name.len()
                        && key.starts_with(name)
                        && key[name.len()..].starts_with(|c: char| c.is_ascii_uppercase())
                    {
                        push_flat(&mut out, value);
                    }
                }
            }
        }
    }
    out
}

fn push_flat<'a>(out: &mut Collection<'a>, value: &'a Value) {
    match value {
        Value::Array(items) => out.extend(items.iter().filter(|v| !v.is_null()).map(Item::Node)),
        Value::Null => {}
        other => out.push(Item::Node(other)),
    }
}

/// The child elements of every object item (not `resourceType`; a `_name` only without its `name`).
fn children<'a>(input: &[Item<'a>]) -> Collection<'a> {
    let mut out = Vec::new();
    for item in input {
        if let Item::Node(Value::Object(map)) = item {
            for (key, value) in map {
                if key == "resourceType" {
                    continue;
                }
                match key.strip_prefix('_') {
                    Some(base) if map.contains_key(base) => {}
                    _ => push_flat(&mut out, value),
                }
            }
        }
    }
    out
}

fn count_children(input: &[Item<'_>]) -> usize {
    let mut count = 0;
    for item in input {
        if let Item::Node(Value::Object(map)) = item {
            for (key, value) in map {
                if key == "resourceType" {
                    continue;
                }
                if let Some(base) = key.strip_prefix('_')
                    && map.contains_key(base)
                {
                    continue;
                }
                count += match value {
                    Value::Array(items) => items.iter().filter(|v| !v.is_null()).count(),
                    Value::Null => 0,
                    _ => 1,
                };
            }
        }
    }
    count
}

fn descendants<'a>(input: &[Item<'a>]) -> Collection<'a> {
    let mut out = Vec::new();
    let mut pending = children(input);
    while !pending.is_empty() {
        let next = children(&pending);
        out.append(&mut pending);
        pending = next;
    }
    out
}

fn is_bool(item: &Item<'_>, want: bool) -> bool {
    matches!(item.scalar(), Some(Scalar::Bool(b)) if b == want)
}

/// Singleton evaluation to a boolean: empty is empty, one boolean is itself, one other item is true.
pub fn to_bool(items: &[Item<'_>], what: &'static str) -> Result<Option<bool>, EvalError> {
    match items {
        [] => Ok(None),
        [item] => Ok(Some(match item.scalar() {
            Some(Scalar::Bool(b)) => b,
            _ => true,
        })),
        _ => Err(EvalError::NotSingleton {
            what,
            count: items.len(),
        }),
    }
}

fn singleton_number(items: &[Item<'_>], what: &'static str) -> Result<Option<f64>, EvalError> {
    match items {
        [] => Ok(None),
        [item] => match item.scalar() {
            Some(Scalar::Number(n)) => Ok(Some(n)),
            _ => Err(EvalError::Type {
                what,
                expected: "a number",
            }),
        },
        _ => Err(EvalError::NotSingleton {
            what,
            count: items.len(),
        }),
    }
}

fn singleton_str<'i>(
    items: &'i [Item<'_>],
    what: &'static str,
) -> Result<Option<&'i str>, EvalError> {
    match items {
        [] => Ok(None),
        [item] => item.as_str().map(Some).ok_or(EvalError::Type {
            what,
            expected: "a string",
        }),
        _ => Err(EvalError::NotSingleton {
            what,
            count: items.len(),
        }),
    }
}

fn count_arg(items: &[Item<'_>]) -> Result<usize, EvalError> {
    Ok(singleton_number(items, "a count")?.map_or(0, |n| n.max(0.0) as usize))
}

fn binary_values<'a>(op: BinOp, l: Collection<'a>, r: Collection<'a>) -> Res<'a> {
    let boolean = |b: Option<bool>| Ok(b.map(Item::Bool).into_iter().collect());
    match op {
        BinOp::Union => Ok(distinct(l.into_iter().chain(r).collect())),
        BinOp::Eq | BinOp::Ne => {
            if l.is_empty() || r.is_empty() {
                return Ok(Vec::new());
            }
            let same = collections_equal(&l, &r);
            boolean(same.map(|e| e == (op == BinOp::Eq)))
        }
        BinOp::Equiv | BinOp::NotEquiv => {
            let same = l.len() == r.len() && l.iter().all(|a| r.iter().any(|b| equivalent(a, b)));
            boolean(Some(same == (op == BinOp::Equiv)))
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => boolean(compare(op, &l, &r)?),
        BinOp::In => membership(&l, &r, "in"),
        BinOp::Contains => membership(&r, &l, "contains"),
        BinOp::Xor => {
            let (a, b) = (to_bool(&l, "xor")?, to_bool(&r, "xor")?);
            boolean(a.zip(b).map(|(a, b)| a != b))
        }
        BinOp::Concat => {
            let text = |c: &Collection<'a>| -> Result<String, EvalError> {
                Ok(match c.as_slice() {
                    [] => String::new(),
                    [item] => item.to_str_item().unwrap_or_default().into_owned(),
                    _ => {
                        return Err(EvalError::NotSingleton {
                            what: "&",
                            count: c.len(),
                        });
                    }
                })
            };
            Ok(vec![long_string(text(&l)? + &text(&r)?)?])
        }
        _ => arithmetic(op, &l, &r),
    }
}

fn membership<'a>(needle: &[Item<'a>], haystack: &[Item<'a>], what: &'static str) -> Res<'a> {
    match needle {
        [] => Ok(Vec::new()),
        [item] => Ok(vec![Item::Bool(contains(haystack, item))]),
        _ => Err(EvalError::NotSingleton {
            what,
            count: needle.len(),
        }),
    }
}

fn arithmetic<'a>(op: BinOp, l: &[Item<'a>], r: &[Item<'a>]) -> Res<'a> {
    if l.is_empty() || r.is_empty() {
        return Ok(Vec::new());
    }
    if let (BinOp::Add, [a], [b]) = (op, l, r)
        && let (Some(a), Some(b)) = (a.as_str(), b.as_str())
    {
        return Ok(vec![long_string(format!("{a}{b}"))?]);
    }
    let (Some(a), Some(b)) = (
        singleton_number(l, "arithmetic")?,
        singleton_number(r, "arithmetic")?,
    ) else {
        return Ok(Vec::new());
    };
    let value = match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div if b != 0.0 => a / b,
        BinOp::IntDiv if b != 0.0 => (a / b).trunc(),
        BinOp::Mod if b != 0.0 => a % b,
        _ => return Ok(Vec::new()),
    };
    Ok(vec![Item::Number(value)])
}

/// FHIRPath `=` on two collections: item by item, in order.
fn collections_equal(l: &[Item<'_>], r: &[Item<'_>]) -> Option<bool> {
    if l.len() != r.len() {
        return Some(false);
    }
    let mut unknown = false;
    for (a, b) in l.iter().zip(r) {
        match equal(a, b) {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    (!unknown).then_some(true)
}

/// FHIRPath `=` on two items; `None` when the answer is unknown (dates at different precisions).
fn equal(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
    match (a.scalar(), b.scalar()) {
        (Some(Scalar::Str(x)), Some(Scalar::Str(y))) => {
            if x == y {
                return Some(true);
            }
            match date_cmp(x, y) {
                Some(DateOrder::Known(order)) => Some(order == Ordering::Equal),
                Some(DateOrder::Unknown) => None,
                None => Some(false),
            }
        }
        (Some(Scalar::Number(x)), Some(Scalar::Number(y))) => Some(x == y),
        (Some(Scalar::Bool(x)), Some(Scalar::Bool(y))) => Some(x == y),
        (None, None) => Some(match (a, b) {
            (Item::Node(x), Item::Node(y)) => x == y,
            _ => false,
        }),
        _ => Some(false),
    }
}

fn equivalent(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (a.scalar(), b.scalar()) {
        (Some(Scalar::Str(x)), Some(Scalar::Str(y))) => x
            .split_whitespace()
            .map(str::to_lowercase)
            .eq(y.split_whitespace().map(str::to_lowercase)),
        _ => equal(a, b) == Some(true),
    }
}

fn contains(haystack: &[Item<'_>], needle: &Item<'_>) -> bool {
    haystack
        .iter()
        .any(|item| equal(item, needle) == Some(true))
}

fn distinct(items: Collection<'_>) -> Collection<'_> {
    let mut out: Collection<'_> = Vec::with_capacity(items.len());
    for item in items {
        if !contains(&out, &item) {
            out.push(item);
        }
    }
    out
}

fn is_distinct(items: &[Item<'_>]) -> bool {
    if let Some(strings) = items.iter().map(Item::as_str).collect::<Option<Vec<_>>>() {
        let mut seen = HashSet::with_capacity(strings.len());
        return strings.into_iter().all(|s| seen.insert(s));
    }
    items
        .iter()
        .enumerate()
        .all(|(i, a)| !items[..i].iter().any(|b| equal(a, b) == Some(true)))
}

fn compare(op: BinOp, l: &[Item<'_>], r: &[Item<'_>]) -> Result<Option<bool>, EvalError> {
    let (a, b) = match (l, r) {
        ([], _) | (_, []) => return Ok(None),
        ([a], [b]) => (a, b),
        _ => {
            return Err(EvalError::NotSingleton {
                what: "a comparison",
                count: l.len().max(r.len()),
            });
        }
    };
    let order = match (a.scalar(), b.scalar()) {
        (Some(Scalar::Number(x)), Some(Scalar::Number(y))) => x.partial_cmp(&y),
        (Some(Scalar::Str(x)), Some(Scalar::Str(y))) => match date_cmp(x, y) {
            Some(DateOrder::Known(order)) => Some(order),
            Some(DateOrder::Unknown) => None,
            None => Some(x.cmp(y)),
        },
        _ => {
            return Err(EvalError::Type {
                what: "a comparison",
                expected: "two numbers, two strings or two dates",
            });
        }
    };
    Ok(order.map(|order| match op {
        BinOp::Lt => order == Ordering::Less,
        BinOp::Le => order != Ordering::Greater,
        BinOp::Gt => order == Ordering::Greater,
        _ => order != Ordering::Less,
    }))
}

enum DateOrder {
    Known(Ordering),
    Unknown,
}

/// FHIR dates (`2024`, `2024-05`, `2024-05-01`, date-times): `None` when either is not a date.
fn date_cmp(a: &str, b: &str) -> Option<DateOrder> {
    if !looks_like_date(a) || !looks_like_date(b) {
        return None;
    }
    if let (Ok(x), Ok(y)) = (
        chrono::DateTime::parse_from_rfc3339(a),
        chrono::DateTime::parse_from_rfc3339(b),
    ) {
        return Some(DateOrder::Known(x.cmp(&y)));
    }
    let (x, y) = (a.get(..10).unwrap_or(a), b.get(..10).unwrap_or(b));
    let common = x.len().min(y.len());
    match x[..common].cmp(&y[..common]) {
        Ordering::Equal if a.len() == b.len() => Some(DateOrder::Known(Ordering::Equal)),
        Ordering::Equal => Some(DateOrder::Unknown),
        order => Some(DateOrder::Known(order)),
    }
}

fn looks_like_date(s: &str) -> bool {
    let bytes = s.as_bytes();
    let shape = |i: usize, digit: bool| {
        bytes.get(i).is_none_or(|b| {
            if digit {
                b.is_ascii_digit()
            } else {
                *b == b'-'
            }
        })
    };
    bytes.len() >= 4
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && (bytes.len() == 4 || bytes[4] == b'-')
        && [5, 6, 8, 9].into_iter().all(|i| shape(i, true))
        && shape(7, false)
        && (bytes.len() <= 10 || bytes[10] == b'T')
}

fn type_op<'a>(op: TypeOp, items: &[Item<'a>], type_name: &str) -> Res<'a> {
    match (op, items) {
        (_, []) => Ok(Vec::new()),
        (TypeOp::Is, [item]) => Ok(vec![Item::Bool(is_type(item, type_name))]),
        (TypeOp::As, [item]) => Ok(if is_type(item, type_name) {
            vec![item.clone()]
        } else {
            Vec::new()
        }),
        _ => Err(EvalError::NotSingleton {
            what: "is/as",
            count: items.len(),
        }),
    }
}

/// Whether an item is of a type, judged from its JSON (see the module documentation).
fn is_type(item: &Item<'_>, type_name: &str) -> bool {
    let name = type_name
        .strip_prefix("FHIR.")
        .or_else(|| type_name.strip_prefix("System."))
        .unwrap_or(type_name);
    match (item, item.scalar()) {
        (Item::Node(Value::Object(map)), _) => {
            map.member("resourceType").and_then(Value::as_str) == Some(name)
                || (name == "Resource" || name == "DomainResource")
                    && map.contains_key("resourceType")
        }
        (_, Some(Scalar::Bool(_))) => name.eq_ignore_ascii_case("boolean"),
        (_, Some(Scalar::Number(n))) => match name {
            "integer" | "Integer" => n.fract() == 0.0,
            "positiveInt" => n.fract() == 0.0 && n > 0.0,
            "unsignedInt" => n.fract() == 0.0 && n >= 0.0,
            _ => matches!(name, "decimal" | "Decimal"),
        },
        (_, Some(Scalar::Str(s))) => match name {
            "date" | "Date" | "dateTime" | "DateTime" | "instant" => looks_like_date(s),
            _ => matches!(
                name,
                "string"
                    | "String"
                    | "uri"
                    | "url"
                    | "canonical"
                    | "code"
                    | "id"
                    | "oid"
                    | "uuid"
                    | "markdown"
                    | "base64Binary"
                    | "time"
                    | "Time"
            ),
        },
        _ => false,
    }
}

fn extensions<'a>(focus: &[Item<'a>], url: &[Item<'a>]) -> Res<'a> {
    let Some(url) = singleton_str(url, "extension()")? else {
        return Ok(Vec::new());
    };
    let all = navigate(focus, "extension", false);
    Ok(all
        .into_iter()
        .filter(
            |e| matches!(e, Item::Node(v) if v.member("url").and_then(Value::as_str) == Some(url)),
        )
        .collect())
}

fn string_function<'a>(func: Func, focus: &[Item<'a>], args: &[Collection<'a>]) -> Res<'a> {
    let what = func.name();
    let Some(text) = singleton_str(focus, what)? else {
        return Ok(Vec::new());
    };
    let arg = |i: usize| args.get(i).map(Vec::as_slice).unwrap_or_default();
    let string_arg = |i: usize| singleton_str(arg(i), what);
    match func {
        Func::StartsWith => {
            Ok(string_arg(0)?.map_or_else(Vec::new, |p| vec![Item::Bool(text.starts_with(p))]))
        }
        Func::EndsWith => {
            Ok(string_arg(0)?.map_or_else(Vec::new, |p| vec![Item::Bool(text.ends_with(p))]))
        }
        Func::Contains => {
            Ok(string_arg(0)?.map_or_else(Vec::new, |p| vec![Item::Bool(text.contains(p))]))
        }
        Func::Length => Ok(vec![Item::Number(text.chars().count() as f64)]),
        Func::Upper => Ok(vec![Item::Str(Cow::Owned(text.to_uppercase()))]),
        Func::Lower => Ok(vec![Item::Str(Cow::Owned(text.to_lowercase()))]),
        Func::ToString => Ok(vec![Item::Str(Cow::Owned(text.to_owned()))]),
        Func::ToInteger => Ok(text
            .parse::<i64>()
            .map(|n| Item::Number(n as f64))
            .into_iter()
            .collect()),
        Func::IndexOf => Ok(string_arg(0)?.map_or_else(Vec::new, |p| {
            let index = text
                .find(p)
                .map_or(-1.0, |b| text[..b].chars().count() as f64);
            vec![Item::Number(index)]
        })),
        Func::Substring => substring(text, arg(0), arg(1)),
        Func::Replace => match (string_arg(0)?, string_arg(1)?) {
            (Some(from), Some(to)) => Ok(vec![long_string(text.replace(from, to))?]),
            _ => Ok(Vec::new()),
        },
        _ => Ok(Vec::new()),
    }
}

/// A computed string, refused beyond [`MAX_STRING`].
fn long_string<'a>(text: String) -> Result<Item<'a>, EvalError> {
    if text.len() > MAX_STRING {
        return Err(EvalError::TooCostly);
    }
    Ok(Item::Str(Cow::Owned(text)))
}

fn substring<'a>(text: &str, start: &[Item<'a>], length: &[Item<'a>]) -> Res<'a> {
    let Some(start) = singleton_number(start, "substring()")? else {
        return Ok(Vec::new());
    };
    let count = text.chars().count();
    if start < 0.0 || start as usize >= count {
        return Ok(Vec::new());
    }
    let length = singleton_number(length, "substring()")?.map_or(count, |n| n.max(0.0) as usize);
    let piece: String = text.chars().skip(start as usize).take(length).collect();
    Ok(vec![Item::Str(Cow::Owned(piece))])
}

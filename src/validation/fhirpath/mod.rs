//! A compact FHIRPath engine for the FHIR invariants: the subset of FHIRPath N1 that the R4 core and
//! SDOHCC constraints use, evaluated over `serde_json::Value` without cloning the document.
//!
//! An expression is compiled once ([`Expression::compile`]: lexer, then parser to an [`Expr`] tree,
//! with function names, arities and literal `matches()` patterns checked) and evaluated any number of
//! times ([`Expression::evaluate`]). Supported: paths (with choice elements and type-name prefixes),
//! indexers, `where select all exists empty not count first last tail skip take single distinct
//! isDistinct union combine intersect exclude subsetOf supersetOf iif trace children descendants
//! hasValue extension resolve ofType as is` and the string functions `startsWith endsWith contains
//! matches substring indexOf length upper lower replace toString toInteger`; the operators
//! `. [] unary- * / div mod + - & | < <= > >= = != ~ !~ is as in contains and or xor implies`; the
//! variables `%resource %rootResource %context %ucum %sct %loinc` and `$this`.
//! `resolve()` only looks inside the document (contained resources and the entries of the Bundle).
//!
//! No input panics: parse errors and evaluation errors are typed ([`ParseError`], [`EvalError`]);
//! nesting is bounded when parsing, so evaluation depth is bounded too.

mod eval;
mod lexer;
mod parser;

pub use eval::{Collection, Env, Item};
pub use parser::{Expr, MAX_DEPTH};

use serde_json::Value;

/// Why an expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A token that cannot stand here.
    #[error("at {at}: found {found}, expected {expected}")]
    Unexpected {
        /// Byte offset.
        at: usize,
        /// What was found.
        found: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// The expression ends too early.
    #[error("at {at}: the expression ends, expected {expected}")]
    UnexpectedEnd {
        /// Byte offset (the length of the expression).
        at: usize,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// A string, delimited name or comment that is never closed.
    #[error("at {at}: unterminated {what}")]
    Unterminated {
        /// Where it opens.
        at: usize,
        /// `string` or `comment`.
        what: &'static str,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("at {at}: the expression nests deeper than {MAX_DEPTH} levels")]
    TooDeep {
        /// Where the limit was passed.
        at: usize,
    },
    /// A function this engine does not know.
    #[error("at {at}: unknown or unsupported function {name}()")]
    UnknownFunction {
        /// Where it is called.
        at: usize,
        /// Its name.
        name: String,
    },
    /// A known function with the wrong number of arguments.
    #[error("at {at}: {name}() does not take {found} argument(s)")]
    Arity {
        /// Where it is called.
        at: usize,
        /// The function.
        name: &'static str,
        /// How many arguments were given.
        found: usize,
    },
    /// A construct outside the supported subset (`$index`, `%vs-...`).
    #[error("at {at}: {what} is not supported")]
    Unsupported {
        /// Where it is.
        at: usize,
        /// What it is.
        what: String,
    },
    /// A `matches()` pattern that is not a valid regular expression.
    #[error("at {at}: invalid pattern: {reason}")]
    BadPattern {
        /// Where the call is.
        at: usize,
        /// What the regex engine said.
        reason: String,
    },
}

/// Why an evaluation failed (the data, not the expression, is at odds with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// An operator or function that needs one item got several.
    #[error("{what} expects a single item, got {count}")]
    NotSingleton {
        /// The operator or function.
        what: &'static str,
        /// How many items it got.
        count: usize,
    },
    /// An item of the wrong kind.
    #[error("{what} expects {expected}")]
    Type {
        /// The operator or function.
        what: &'static str,
        /// What it accepts.
        expected: &'static str,
    },
    /// A computed `matches()` pattern that is not a valid regular expression.
    #[error("invalid pattern: {0}")]
    BadPattern(String),
    /// The evaluation would produce more than `MAX_WORK` items or a string longer than `MAX_STRING`.
    #[error("the expression does too much work on this element")]
    TooCostly,
}

/// A compiled FHIRPath expression.
#[derive(Debug, Clone)]
pub struct Expression {
    text: String,
    tree: Expr,
}

impl Expression {
    /// Compile `text`.
    pub fn compile(text: &str) -> Result<Self, ParseError> {
        Ok(Self {
            text: text.to_owned(),
            tree: parser::parse(text)?,
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluate with `focus` as `$this`.
    pub fn evaluate<'a>(
        &'a self,
        focus: &'a Value,
        env: Env<'a>,
    ) -> Result<Collection<'a>, EvalError> {
        let evaluator = eval::Evaluator::new(env);
        evaluator.eval(&self.tree, &[Item::Node(focus)])
    }

    /// Evaluate as a constraint: `Some(false)` when it fails, `Some(true)` when it holds, `None` when
    /// the result is empty (undecided, which a constraint treats as holding).
    pub fn check<'a>(&'a self, focus: &'a Value, env: Env<'a>) -> Result<Option<bool>, EvalError> {
        let evaluator = eval::Evaluator::new(env);
        evaluator.eval_bool(&self.tree, &[Item::Node(focus)])
    }
}

impl Env<'_> {
    /// The environment of a stand-alone resource (its own `%resource` and `%rootResource`).
    pub fn of(resource: &Value) -> Env<'_> {
        Env {
            resource,
            root_resource: resource,
            bundle: None,
            context: resource,
        }
    }
}

#[cfg(test)]
mod tests;

//! The FHIRPath parser: tokens to an [`Expr`] tree, with the operator precedence of the FHIRPath
//! grammar (N1, section 4.4). Function names and arities are checked here, and the pattern of a
//! `matches()` whose argument is a literal is compiled here, so evaluation never re-parses anything.
//! Nesting is limited ([`MAX_DEPTH`]) so a hostile expression cannot exhaust the stack.

use super::ParseError;
use super::lexer::{Tok, Token, tokenize};
use regex::Regex;
use std::sync::Arc;

/// The deepest nesting of sub-expressions accepted.
pub const MAX_DEPTH: usize = 128;

/// A compiled FHIRPath expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// `{}`.
    Empty,
    /// `true` / `false`.
    Bool(bool),
    /// A number literal (kept as f64: the invariants compare counts and small constants).
    Number(f64),
    /// A string (or date) literal.
    Str(String),
    /// `$this`: the input of the expression or of the current lambda.
    This,
    /// `%resource`, `%rootResource`, `%context`, `%ucum`...
    Env(EnvVar),
    /// An identifier navigated from the input (`name`, or a type name such as `Bundle`).
    Ident(String),
    /// `target.name`.
    Member(Box<Expr>, String),
    /// `target.f(args)`, or `f(args)` on the input when there is no target.
    Call(Box<Call>),
    /// `target[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// `-x`.
    Negate(Box<Expr>),
    /// A binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `x is Type` / `x as Type`.
    TypeOp(TypeOp, Box<Expr>, String),
}

/// A function invocation.
#[derive(Debug, Clone)]
pub struct Call {
    /// What it is invoked on (`None`: the input).
    pub target: Option<Expr>,
    /// Which function.
    pub func: Func,
    /// The arguments, unevaluated.
    pub args: Vec<Expr>,
    /// The compiled pattern of `matches('literal')`.
    pub regex: Option<Arc<Regex>>,
}

/// Environment variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvVar {
    /// `%resource`: the resource that holds the element being checked.
    Resource,
    /// `%rootResource`: the container of a contained resource, else `%resource`.
    RootResource,
    /// `%context`: the element the expression started from.
    Context,
    /// `%ucum`: the UCUM code system URL.
    Ucum,
    /// `%sct`: the SNOMED CT code system URL.
    Sct,
    /// `%loinc`: the LOINC code system URL.
    Loinc,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BinOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

/// `is` / `as` operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum TypeOp {
    Is,
    As,
}

macro_rules! functions {
    ($($variant:ident = $name:literal ($min:literal, $max:literal),)*) => {
        /// The functions the evaluator knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum Func { $($variant,)* }

        impl Func {
            fn lookup(name: &str) -> Option<(Func, usize, usize)> {
                match name {
                    $($name => Some((Func::$variant, $min, $max)),)*
                    _ => None,
                }
            }

            /// The FHIRPath name.
            pub fn name(self) -> &'static str {
                match self { $(Func::$variant => $name,)* }
            }
        }
    };
}

functions! {
    Empty = "empty"(0, 0),
    Exists = "exists"(0, 1),
    All = "all"(1, 1),
    AllTrue = "allTrue"(0, 0),
    AnyTrue = "anyTrue"(0, 0),
    AllFalse = "allFalse"(0, 0),
    AnyFalse = "anyFalse"(0, 0),
    Count = "count"(0, 0),
    Distinct = "distinct"(0, 0),
    IsDistinct = "isDistinct"(0, 0),
    Where = "where"(1, 1),
    Select = "select"(1, 1),
    OfType = "ofType"(1, 1),
    As = "as"(1, 1),
    Is = "is"(1, 1),
    Single = "single"(0, 0),
    First = "first"(0, 0),
    Last = "last"(0, 0),
    Tail = "tail"(0, 0),
    Skip = "skip"(1, 1),
    Take = "take"(1, 1),
    Intersect = "intersect"(1, 1),
    Exclude = "exclude"(1, 1),
    Union = "union"(1, 1),
    Combine = "combine"(1, 1),
    Not = "not"(0, 0),
    Iif = "iif"(2, 3),
    Trace = "trace"(1, 2),
    Children = "children"(0, 0),
    Descendants = "descendants"(0, 0),
    HasValue = "hasValue"(0, 0),
    Extension = "extension"(1, 1),
    Resolve = "resolve"(0, 0),
    StartsWith = "startsWith"(1, 1),
    EndsWith = "endsWith"(1, 1),
    Contains = "contains"(1, 1),
    Matches = "matches"(1, 1),
    Substring = "substring"(1, 2),
    IndexOf = "indexOf"(1, 1),
    Length = "length"(0, 0),
    Upper = "upper"(0, 0),
    Lower = "lower"(0, 0),
    Replace = "replace"(2, 2),
    ToString = "toString"(0, 0),
    ToInteger = "toInteger"(0, 0),
    SubsetOf = "subsetOf"(1, 1),
    SupersetOf = "supersetOf"(1, 1),
}

/// Parse and compile `text`.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens: &tokens,
        pos: 0,
        depth: 0,
        end: text.len(),
    };
    let expr = parser.expression(0)?;
    match parser.peek() {
        None => Ok(expr),
        Some(token) => Err(parser.unexpected(token, "the end of the expression")),
    }
}

struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
    depth: usize,
    end: usize,
}

/// Infix operators: (left binding power, operator). Higher binds tighter.
fn infix(token: &Tok) -> Option<(u8, Infix)> {
    use BinOp::*;
    let op = match token {
        Tok::Punct(p) => match *p {
            "*" => Infix::Bin(Mul),
            "/" => Infix::Bin(Div),
            "+" => Infix::Bin(Add),
            "-" => Infix::Bin(Sub),
            "&" => Infix::Bin(Concat),
            "|" => Infix::Bin(Union),
            "<" => Infix::Bin(Lt),
            "<=" => Infix::Bin(Le),
            ">" => Infix::Bin(Gt),
            ">=" => Infix::Bin(Ge),
            "=" => Infix::Bin(Eq),
            "!=" => Infix::Bin(Ne),
            "~" => Infix::Bin(Equiv),
            "!~" => Infix::Bin(NotEquiv),
            _ => return None,
        },
        Tok::Ident(word) => match word.as_str() {
            "div" => Infix::Bin(IntDiv),
            "mod" => Infix::Bin(Mod),
            "is" => Infix::Type(TypeOp::Is),
            "as" => Infix::Type(TypeOp::As),
            "in" => Infix::Bin(In),
            "contains" => Infix::Bin(Contains),
            "and" => Infix::Bin(And),
            "or" => Infix::Bin(Or),
            "xor" => Infix::Bin(Xor),
            "implies" => Infix::Bin(Implies),
            _ => return None,
        },
        _ => return None,
    };
    let power = match op {
        Infix::Bin(Mul | Div | IntDiv | Mod) => 10,
        Infix::Bin(Add | Sub | Concat) => 9,
        Infix::Type(_) => 8,
        Infix::Bin(Union) => 7,
        Infix::Bin(Lt | Le | Gt | Ge) => 6,
        Infix::Bin(Eq | Ne | Equiv | NotEquiv) => 5,
        Infix::Bin(In | Contains) => 4,
        Infix::Bin(And) => 3,
        Infix::Bin(Or | Xor) => 2,
        Infix::Bin(Implies) => 1,
    };
    Some((power, op))
}

#[derive(Clone, Copy)]
enum Infix {
    Bin(BinOp),
    Type(TypeOp),
}

impl<'t> Parser<'t> {
    fn peek(&self) -> Option<&'t Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self, expected: &'static str) -> Result<&'t Token, ParseError> {
        let token = self.tokens.get(self.pos).ok_or(ParseError::UnexpectedEnd {
            at: self.end,
            expected,
        })?;
        self.pos += 1;
        Ok(token)
    }

    fn unexpected(&self, token: &Token, expected: &'static str) -> ParseError {
        ParseError::Unexpected {
            at: token.at,
            found: describe(&token.kind),
            expected,
        }
    }

    fn eat(&mut self, punct: &str) -> bool {
        if matches!(self.peek(), Some(Token { kind: Tok::Punct(p), .. }) if *p == punct) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, punct: &'static str) -> Result<(), ParseError> {
        let token = self.next(punct)?;
        match &token.kind {
            Tok::Punct(p) if *p == punct => Ok(()),
            _ => Err(self.unexpected(token, punct)),
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::TooDeep { at });
        }
        Ok(())
    }

    /// An expression whose operators bind tighter than `min_power`.
    fn expression(&mut self, min_power: u8) -> Result<Expr, ParseError> {
        let at = self.peek().map_or(self.end, |t| t.at);
        self.enter(at)?;
        let depth = self.depth;
        let mut left = self.unary()?;
        while let Some(token) = self.peek() {
            let Some((power, op)) = infix(&token.kind) else {
                break;
            };
            if power <= min_power {
                break;
            }
            // A left-deep chain (`a or b or c...`) nests as deep as it is long.
            self.enter(token.at)?;
            self.pos += 1;
            left = match op {
                Infix::Bin(op) => {
                    let right = self.expression(power)?;
                    Expr::Binary(op, Box::new(left), Box::new(right))
                }
                Infix::Type(op) => Expr::TypeOp(op, Box::new(left), self.type_name()?),
            };
        }
        self.depth = depth - 1;
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat("-") {
            let at = self.peek().map_or(self.end, |t| t.at);
            self.enter(at)?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Negate(Box::new(inner)));
        }
        if self.eat("+") {
            return self.unary();
        }
        let term = self.term()?;
        self.postfix(term)
    }

    fn postfix(&mut self, mut expr: Expr) -> Result<Expr, ParseError> {
        let depth = self.depth;
        let result = self.postfix_chain(&mut expr);
        self.depth = depth;
        result.map(|()| expr)
    }

    /// `.name`, `.f()` and `[i]` after a term; each link nests one level deeper.
    fn postfix_chain(&mut self, expr: &mut Expr) -> Result<(), ParseError> {
        loop {
            let at = self.peek().map_or(self.end, |t| t.at);
            if self.eat(".") {
                self.enter(at)?;
                let token = self.next("a name after '.'")?;
                let name = match &token.kind {
                    Tok::Ident(name) | Tok::Delimited(name) => name.clone(),
                    _ => return Err(self.unexpected(token, "a name after '.'")),
                };
                let target = std::mem::replace(expr, Expr::Empty);
                *expr = if self.eat("(") {
                    self.call(Some(target), &name, token.at)?
                } else {
                    Expr::Member(Box::new(target), name)
                };
            } else if self.eat("[") {
                self.enter(at)?;
                let index = self.expression(0)?;
                self.expect("]")?;
                let target = std::mem::replace(expr, Expr::Empty);
                *expr = Expr::Index(Box::new(target), Box::new(index));
            } else {
                return Ok(());
            }
        }
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let token = self.next("a name, a literal or '('")?;
        Ok(match &token.kind {
            Tok::Str(s) | Tok::Date(s) => Expr::Str(s.clone()),
            Tok::Number(n) => Expr::Number(n.parse().map_err(|_| ParseError::Unexpected {
                at: token.at,
                found: n.clone(),
                expected: "a number",
            })?),
            Tok::Env(name) => Expr::Env(env_var(name, token.at)?),
            Tok::Dollar(name) if name == "this" => Expr::This,
            Tok::Dollar(name) => {
                return Err(ParseError::Unsupported {
                    at: token.at,
                    what: format!("${name}"),
                });
            }
            Tok::Delimited(name) => Expr::Ident(name.clone()),
            Tok::Ident(word) => match word.as_str() {
                "true" => Expr::Bool(true),
                "false" => Expr::Bool(false),
                _ if self.eat("(") => self.call(None, word, token.at)?,
                _ => Expr::Ident(word.clone()),
            },
            Tok::Punct("(") => {
                let inner = self.expression(0)?;
                self.expect(")")?;
                inner
            }
            Tok::Punct("{") => {
                self.expect("}")?;
                Expr::Empty
            }
            _ => return Err(self.unexpected(token, "a name, a literal or '('")),
        })
    }

    /// `name(args)` after its `(`.
    fn call(&mut self, target: Option<Expr>, name: &str, at: usize) -> Result<Expr, ParseError> {
        let (func, min, max) = Func::lookup(name).ok_or_else(|| ParseError::UnknownFunction {
            at,
            name: name.to_owned(),
        })?;
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push(self.argument(func)?);
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        if args.len() < min || args.len() > max {
            return Err(ParseError::Arity {
                at,
                name: func.name(),
                found: args.len(),
            });
        }
        let regex = match (func, args.first()) {
            (Func::Matches, Some(Expr::Str(pattern))) => Some(compile_regex(pattern, at)?),
            _ => None,
        };
        Ok(Expr::Call(Box::new(Call {
            target,
            func,
            args,
            regex,
        })))
    }

    /// A function argument; the type arguments of `ofType`/`as`/`is` are type names.
    fn argument(&mut self, func: Func) -> Result<Expr, ParseError> {
        if matches!(func, Func::OfType | Func::As | Func::Is) {
            return Ok(Expr::Str(self.type_name()?));
        }
        self.expression(0)
    }

    /// `Type` or `Namespace.Type`.
    fn type_name(&mut self) -> Result<String, ParseError> {
        let mut name = String::new();
        loop {
            let token = self.next("a type name")?;
            match &token.kind {
                Tok::Ident(part) | Tok::Delimited(part) => name.push_str(part),
                _ => return Err(self.unexpected(token, "a type name")),
            }
            let dotted = matches!(
                self.peek(),
                Some(Token {
                    kind: Tok::Punct("."),
                    ..
                })
            ) && matches!(
                self.tokens.get(self.pos + 1),
                Some(Token {
                    kind: Tok::Ident(_) | Tok::Delimited(_),
                    ..
                })
            ) && !matches!(
                self.tokens.get(self.pos + 2),
                Some(Token {
                    kind: Tok::Punct("("),
                    ..
                })
            ) && matches!(name.as_str(), "System" | "FHIR");
            if !dotted {
                return Ok(name);
            }
            self.pos += 1;
            name.push('.');
        }
    }
}

/// Compile a `matches()` pattern (size-limited: a pattern cannot claim unbounded memory).
pub fn compile_regex(pattern: &str, at: usize) -> Result<Arc<Regex>, ParseError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .nest_limit(64)
        .build()
        .map(Arc::new)
        .map_err(|e| ParseError::BadPattern {
            at,
            reason: e.to_string(),
        })
}

fn env_var(name: &str, at: usize) -> Result<EnvVar, ParseError> {
    Ok(match name {
        "resource" => EnvVar::Resource,
        "rootResource" => EnvVar::RootResource,
        "context" => EnvVar::Context,
        "ucum" => EnvVar::Ucum,
        "sct" => EnvVar::Sct,
        "loinc" => EnvVar::Loinc,
        _ => {
            return Err(ParseError::Unsupported {
                at,
                what: format!("%{name}"),
            });
        }
    })
}

fn describe(kind: &Tok) -> String {
    match kind {
        Tok::Ident(s) | Tok::Number(s) => s.clone(),
        Tok::Delimited(s) => format!("`{s}`"),
        Tok::Str(_) => "a string".into(),
        Tok::Date(s) => format!("@{s}"),
        Tok::Env(s) => format!("%{s}"),
        Tok::Dollar(s) => format!("${s}"),
        Tok::Punct(p) => (*p).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_the_grammar() {
        let expr = parse("a or b and c implies d = 1 + 2 * 3").unwrap();
        let Expr::Binary(BinOp::Implies, left, right) = expr else {
            panic!("implies binds loosest");
        };
        assert!(matches!(*left, Expr::Binary(BinOp::Or, _, _)));
        assert!(matches!(*right, Expr::Binary(BinOp::Eq, _, _)));
    }

    #[test]
    fn functions_are_checked_when_compiled() {
        assert!(matches!(
            parse("name.frobnicate()"),
            Err(ParseError::UnknownFunction { .. })
        ));
        assert!(matches!(
            parse("name.exists(1, 2)"),
            Err(ParseError::Arity { .. })
        ));
        assert!(matches!(
            parse("name.matches('(')"),
            Err(ParseError::BadPattern { .. })
        ));
        assert!(parse("Bundle.entry.resource.is(FHIR.Composition)").is_ok());
        assert!(parse("x is System.String").is_ok());
    }

    #[test]
    fn hostile_input_is_an_error_not_a_crash() {
        let deep = "(".repeat(10_000) + "a" + &")".repeat(10_000);
        assert!(matches!(parse(&deep), Err(ParseError::TooDeep { .. })));
        let chain = "a".to_owned() + &".b".repeat(10_000);
        assert!(matches!(parse(&chain), Err(ParseError::TooDeep { .. })));
        let ors = "a".to_owned() + &" or a".repeat(10_000);
        assert!(matches!(parse(&ors), Err(ParseError::TooDeep { .. })));
        let negations = "-".repeat(10_000) + "1";
        assert!(matches!(parse(&negations), Err(ParseError::TooDeep { .. })));
        for text in [
            "", "a.", "a[", "(a", "a b", "{", "f(", "a.where(", "$index", "%foo", "1 is",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}

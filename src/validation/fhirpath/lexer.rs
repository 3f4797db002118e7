//! The FHIRPath lexer: expression text to tokens (identifiers, delimited identifiers, string, number and
//! date literals, `%variables`, `$this`, operators and punctuation). Comments (`//`, `/* */`) are skipped.
//! Every position is a byte offset into the expression.

use super::ParseError;

/// One token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What the token is.
    pub kind: Tok,
    /// Byte offset of its first character.
    pub at: usize,
}

/// The kinds of token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A plain identifier (also the keywords `and`, `or`, `true`... the parser tells them apart).
    Ident(String),
    /// A `` `delimited` `` identifier: never a keyword.
    Delimited(String),
    /// A `'string'` literal, escapes resolved.
    Str(String),
    /// A number literal, as written.
    Number(String),
    /// A `@date`, `@dateTime` or `@Ttime` literal, without the `@`.
    Date(String),
    /// `%name`.
    Env(String),
    /// `$this`, `$index`, `$total` (the name without `$`).
    Dollar(String),
    /// Operators and punctuation: `. , ( ) [ ] { } + - * / & | = != ~ !~ < <= > >=`.
    Punct(&'static str),
}

const PUNCTS: &[&str] = &[
    "!=", "!~", "<=", ">=", ".", ",", "(", ")", "[", "]", "{", "}", "+", "-", "*", "/", "&", "|",
    "=", "~", "<", ">",
];

/// Split `text` into tokens.
pub fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer { text, pos: 0 };
    let mut tokens = Vec::new();
    while let Some(token) = lexer.next_token()? {
        tokens.push(token);
    }
    Ok(tokens)
}

struct Lexer<'t> {
    text: &'t str,
    pos: usize,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = self.rest();
            if let Some(c) = rest.chars().next()
                && c.is_whitespace()
            {
                self.pos += c.len_utf8();
            } else if rest.starts_with("//") {
                self.pos += rest.find('\n').unwrap_or(rest.len());
            } else if let Some(comment) = rest.strip_prefix("/*") {
                let end = comment.find("*/").ok_or(ParseError::Unterminated {
                    at: self.pos,
                    what: "comment",
                })?;
                self.pos += end + 4;
            } else {
                return Ok(());
            }
        }
    }

    fn next_token(&mut self) -> Result<Option<Token>, ParseError> {
        self.skip_trivia()?;
        let at = self.pos;
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let kind = match c {
            '\'' => Tok::Str(self.quoted('\'')?),
            '`' => Tok::Delimited(self.quoted('`')?),
            '0'..='9' => Tok::Number(self.number()),
            '@' => {
                self.bump();
                Tok::Date(self.take_while(|c| c.is_ascii_alphanumeric() || "-:.+TZ".contains(c)))
            }
            '%' => {
                self.bump();
                Tok::Env(self.env_name(at)?)
            }
            '$' => {
                self.bump();
                Tok::Dollar(self.take_while(is_ident_char))
            }
            c if c.is_ascii_alphabetic() || c == '_' => Tok::Ident(self.take_while(is_ident_char)),
            _ => Tok::Punct(self.punct(at, c)?),
        };
        Ok(Some(Token { kind, at }))
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
        self.text[start..self.pos].to_owned()
    }

    fn number(&mut self) -> String {
        let start = self.pos;
        self.take_while(|c| c.is_ascii_digit());
        let rest = self.rest();
        if rest.starts_with('.') && rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
            self.bump();
            self.take_while(|c| c.is_ascii_digit());
        }
        self.text[start..self.pos].to_owned()
    }

    fn env_name(&mut self, at: usize) -> Result<String, ParseError> {
        match self.peek() {
            Some('`') => self.quoted('`'),
            Some('\'') => self.quoted('\''),
            Some(c) if is_ident_char(c) => Ok(self.take_while(is_ident_char)),
            _ => Err(ParseError::Unexpected {
                at,
                found: "%".into(),
                expected: "a variable name after %",
            }),
        }
    }

    fn punct(&mut self, at: usize, c: char) -> Result<&'static str, ParseError> {
        let rest = self.rest();
        let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) else {
            return Err(ParseError::Unexpected {
                at,
                found: c.to_string(),
                expected: "an operator, a name or a literal",
            });
        };
        self.pos += p.len();
        Ok(p)
    }

    /// A `'...'` or `` `...` `` literal with FHIRPath escapes.
    fn quoted(&mut self, quote: char) -> Result<String, ParseError> {
        let at = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(ParseError::Unterminated { at, what: "string" });
            };
            match c {
                c if c == quote => return Ok(out),
                '\\' => out.push(self.escape(at)?),
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, at: usize) -> Result<char, ParseError> {
        let unterminated = ParseError::Unterminated { at, what: "string" };
        let c = self.bump().ok_or(unterminated)?;
        Ok(match c {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'f' => '\u{c}',
            'u' => {
                let hex = self.rest().get(..4).unwrap_or_default().to_owned();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or(ParseError::Unexpected {
                        at: self.pos,
                        found: hex.clone(),
                        expected: "four hex digits after \\u",
                    })?;
                self.pos += 4;
                code
            }
            other => other,
        })
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Tok> {
        tokenize(text)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn tokens_of_an_invariant() {
        assert_eq!(
            kinds("reference.startsWith('#').not() // local\n or %rootResource != 1.5"),
            vec![
                Tok::Ident("reference".into()),
                Tok::Punct("."),
                Tok::Ident("startsWith".into()),
                Tok::Punct("("),
                Tok::Str("#".into()),
                Tok::Punct(")"),
                Tok::Punct("."),
                Tok::Ident("not".into()),
                Tok::Punct("("),
                Tok::Punct(")"),
                Tok::Ident("or".into()),
                Tok::Env("rootResource".into()),
                Tok::Punct("!="),
                Tok::Number("1.5".into()),
            ]
        );
        assert_eq!(kinds("text.`div`"), {
            vec![
                Tok::Ident("text".into()),
                Tok::Punct("."),
                Tok::Delimited("div".into()),
            ]
        });
        assert_eq!(kinds(r"'it\'s \u00e9'"), vec![Tok::Str("it's é".into())]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for text in ["'open", "`open", "/* open", "#", "%", "'\\u12", "'\\", "é"] {
            assert!(tokenize(text).is_err(), "{text}");
        }
    }
}

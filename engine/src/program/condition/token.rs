//! The tokenizer: source text to tokens, one at a time, for the parser.

use super::ast::Span;
use super::parse::{SyntaxError, SyntaxErrorKind};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Number(f64),
    /// Milliseconds.
    Duration(i64),
    Text(String),
    /// An identifier or a dotted path of them; never a keyword.
    Name(String),
    True,
    False,
    And,
    Or,
    Not,
    In,
    Contains,
    Matches,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Duration units and their length in milliseconds, longest first.
pub(crate) const UNITS: [(&str, i64); 5] =
    [("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)];

/// Fraction digits of a duration count beyond this many are ignored: they are far below a millisecond.
const MAX_FRACTION_DIGITS: usize = 18;

#[derive(Debug, Clone)]
pub(crate) struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next unread character; always on a char boundary.
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    pub fn next_token(&mut self) -> Result<Token, SyntaxError> {
        self.eat_while(|b| b.is_ascii_whitespace());
        let start = self.pos;
        let Some(c) = self.src[start..].chars().next() else {
            return Ok(Token { kind: TokenKind::End, span: Span::new(start, start) });
        };
        let next = self.byte(1);
        let (kind, len) = match c {
            '(' => (TokenKind::LParen, 1),
            ')' => (TokenKind::RParen, 1),
            '[' => (TokenKind::LBracket, 1),
            ']' => (TokenKind::RBracket, 1),
            ',' => (TokenKind::Comma, 1),
            '+' => (TokenKind::Plus, 1),
            '-' => (TokenKind::Minus, 1),
            '*' => (TokenKind::Star, 1),
            '/' => (TokenKind::Slash, 1),
            '%' => (TokenKind::Percent, 1),
            '=' if next == Some(b'=') => (TokenKind::EqEq, 2),
            '!' if next == Some(b'=') => (TokenKind::NotEq, 2),
            '<' if next == Some(b'=') => (TokenKind::Le, 2),
            '<' => (TokenKind::Lt, 1),
            '>' if next == Some(b'=') => (TokenKind::Ge, 2),
            '>' => (TokenKind::Gt, 1),
            '"' | '\'' => {
                let kind = self.text(c)?;
                return Ok(Token { kind, span: Span::new(start, self.pos) });
            }
            '0'..='9' => {
                let kind = self.number()?;
                return Ok(Token { kind, span: Span::new(start, self.pos) });
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let kind = self.name()?;
                return Ok(Token { kind, span: Span::new(start, self.pos) });
            }
            found => return Err(self.error(SyntaxErrorKind::UnexpectedChar { found }, start)),
        };
        self.pos += len;
        Ok(Token { kind, span: Span::new(start, self.pos) })
    }

    fn byte(&self, ahead: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + ahead).copied()
    }

    /// Only ever skips ASCII bytes, so `pos` stays on a char boundary.
    fn eat_while(&mut self, accept: impl Fn(u8) -> bool) {
        while self.byte(0).is_some_and(|b| b.is_ascii() && accept(b)) {
            self.pos += 1;
        }
    }

    fn error(&self, kind: SyntaxErrorKind, offset: usize) -> SyntaxError {
        SyntaxError::new(kind, self.src, offset)
    }

    fn text(&mut self, quote: char) -> Result<TokenKind, SyntaxError> {
        let start = self.pos;
        self.pos += quote.len_utf8();
        let mut out = String::new();
        loop {
            let at = self.pos;
            let Some(c) = self.src[at..].chars().next() else {
                return Err(self.error(SyntaxErrorKind::UnterminatedText, start));
            };
            self.pos += c.len_utf8();
            if c == quote {
                return Ok(TokenKind::Text(out));
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(escaped) = self.src[self.pos..].chars().next() else {
                return Err(self.error(SyntaxErrorKind::UnterminatedText, start));
            };
            self.pos += escaped.len_utf8();
            out.push(match escaped {
                '\\' | '"' | '\'' => escaped,
                'n' => '\n',
                't' => '\t',
                found => return Err(self.error(SyntaxErrorKind::BadEscape { found }, at)),
            });
        }
    }

    /// A number, or a duration when a unit follows the digits directly.
    fn number(&mut self) -> Result<TokenKind, SyntaxError> {
        let start = self.pos;
        self.eat_while(|b| b.is_ascii_digit());
        let whole = &self.src[start..self.pos];
        let mut fraction = "";
        if self.byte(0) == Some(b'.') && self.byte(1).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
            let fraction_start = self.pos;
            self.eat_while(|b| b.is_ascii_digit());
            fraction = &self.src[fraction_start..self.pos];
        }
        let literal = &self.src[start..self.pos];

        if self.byte(0).is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') {
            let unit_start = self.pos;
            self.eat_while(|b| b.is_ascii_alphanumeric() || b == b'_');
            let unit = &self.src[unit_start..self.pos];
            let Some(&(_, unit_ms)) = UNITS.iter().find(|(name, _)| *name == unit) else {
                return Err(self.error(SyntaxErrorKind::BadUnit { unit: unit.to_owned() }, unit_start));
            };
            return duration_ms(whole, fraction, unit_ms)
                .map(TokenKind::Duration)
                .ok_or_else(|| self.error(SyntaxErrorKind::DurationTooLarge, start));
        }

        match literal.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(TokenKind::Number(n)),
            _ => Err(self.error(SyntaxErrorKind::NumberTooLarge, start)),
        }
    }

    fn name(&mut self) -> Result<TokenKind, SyntaxError> {
        let start = self.pos;
        let is_name_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        self.eat_while(is_name_byte);
        let mut dotted = false;
        while self.byte(0) == Some(b'.') {
            if !self.byte(1).is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') {
                return Err(self.error(SyntaxErrorKind::NameAfterDot, self.pos + 1));
            }
            self.pos += 1;
            dotted = true;
            self.eat_while(is_name_byte);
        }
        let name = &self.src[start..self.pos];
        if !dotted && let Some(keyword) = keyword(name) {
            return Ok(keyword);
        }
        Ok(TokenKind::Name(name.to_owned()))
    }
}

pub(crate) fn keyword(name: &str) -> Option<TokenKind> {
    Some(match name {
        "true" => TokenKind::True,
        "false" => TokenKind::False,
        "and" => TokenKind::And,
        "or" => TokenKind::Or,
        "not" => TokenKind::Not,
        "in" => TokenKind::In,
        "contains" => TokenKind::Contains,
        "matches" => TokenKind::Matches,
        _ => return None,
    })
}

/// `whole.fraction` units in milliseconds, rounded to the nearest millisecond; `None` when it does
/// not fit in an i64. Computed from the digits, not through f64, so `0.001s` is exactly 1 ms.
fn duration_ms(whole: &str, fraction: &str, unit_ms: i64) -> Option<i64> {
    let mut ms = whole.parse::<i64>().ok()?.checked_mul(unit_ms)?;
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    if !fraction.is_empty() {
        let scale = 10_i128.pow(u32::try_from(fraction.len()).ok()?);
        let digits: i128 = fraction.parse().ok()?;
        let part = (digits * i128::from(unit_ms) * 2 + scale) / (scale * 2);
        ms = ms.checked_add(i64::try_from(part).ok()?)?;
    }
    Some(ms)
}

//! The parser: tokens to an [`Expr`] by precedence climbing, one function per level, loosest first
//! (`or`, `and`, `not`, comparisons, `+ -`, `* / %`, unary `-`, primary).

use std::fmt;

use super::ast::{BinaryOp, Expr, ExprKind, Span, UnaryOp};
use super::token::{Lexer, Token, TokenKind};

/// Longest source accepted, in bytes.
pub const MAX_SOURCE_LEN: usize = 4096;

/// Deepest nesting accepted: both open parentheses, brackets, calls and prefix operators at any
/// point, and the height of the resulting tree. Every walk over a parsed expression (check, eval,
/// print) therefore recurses at most this deep, whatever a program file holds.
pub const MAX_DEPTH: usize = 64;

/// Why a condition does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub kind: SyntaxErrorKind,
    /// Byte offset into the source.
    pub offset: usize,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxErrorKind {
    #[error("expected {expected}, found {found}")]
    Expected { expected: &'static str, found: String },
    #[error("unexpected character `{found}`{}", char_hint(.found))]
    UnexpectedChar { found: char },
    #[error("text is not closed with its quote")]
    UnterminatedText,
    #[error("unknown escape `\\{found}` (use \\\\, \\\", \\', \\n or \\t)")]
    BadEscape { found: char },
    #[error("expected a name after `.`")]
    NameAfterDot,
    #[error("unknown duration unit `{unit}` (use s, m, h, d or w, as in 30m)")]
    BadUnit { unit: String },
    #[error("number is too large")]
    NumberTooLarge,
    #[error("duration is too large")]
    DurationTooLarge,
    #[error("comparisons cannot be chained; join them with `and`, as in `a < b and b < c`")]
    ChainedComparison,
    #[error("write `not (a {op} b)` instead of `a not {op} b`")]
    NotBeforeOperator { op: &'static str },
    #[error("`not` binds looser than this operator; put it in parentheses: `(not ...)`")]
    MisplacedNot,
    #[error("the condition is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("the condition nests deeper than {max} levels")]
    TooDeep { max: usize },
}

fn char_hint(found: &char) -> &'static str {
    match found {
        '=' => " (use `==` to compare)",
        '!' => " (use `not`, or `!=` to compare)",
        '&' => " (use `and`)",
        '|' => " (use `or`)",
        _ => "",
    }
}

impl SyntaxError {
    pub(crate) fn new(kind: SyntaxErrorKind, source: &str, offset: usize) -> Self {
        let (line, column) = line_column(source, offset);
        Self { kind, offset, line, column }
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = match self.line {
            1 => format!("column {}", self.column),
            line => format!("line {line}, column {}", self.column),
        };
        match &self.kind {
            SyntaxErrorKind::Expected { expected, found } => write!(f, "expected {expected} at {at}, found {found}"),
            kind => write!(f, "{kind} at {at}"),
        }
    }
}

impl std::error::Error for SyntaxError {}

/// The 1-based line and column (in characters) of a byte offset, for pointing at a span.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

pub fn parse(source: &str) -> Result<Expr, SyntaxError> {
    if source.len() > MAX_SOURCE_LEN {
        return Err(SyntaxError::new(SyntaxErrorKind::TooLong { max: MAX_SOURCE_LEN }, source, 0));
    }
    let mut parser = Parser::new(source)?;
    let node = parser.or()?;
    if parser.token.kind != TokenKind::End {
        return Err(parser.expected("an operator or the end of the condition"));
    }
    Ok(node.expr)
}

/// An expression and the height of its tree (a literal or variable is 0).
struct Node {
    expr: Expr,
    height: usize,
}

struct Parser<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
    /// The next token, not yet consumed.
    token: Token,
    /// Open parentheses, brackets, calls and prefix operators around the current position.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Result<Self, SyntaxError> {
        let mut lexer = Lexer::new(src);
        let token = lexer.next_token()?;
        Ok(Self { src, lexer, token, depth: 0 })
    }

    /// Consumes the current token and returns it.
    fn bump(&mut self) -> Result<Token, SyntaxError> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.token, next))
    }

    fn expect(&mut self, kind: TokenKind, expected: &'static str) -> Result<Token, SyntaxError> {
        if self.token.kind == kind { self.bump() } else { Err(self.expected(expected)) }
    }

    fn error(&self, kind: SyntaxErrorKind, offset: usize) -> SyntaxError {
        SyntaxError::new(kind, self.src, offset)
    }

    fn expected(&self, expected: &'static str) -> SyntaxError {
        let span = self.token.span;
        let found = match self.token.kind {
            TokenKind::End => "end of input".to_owned(),
            _ => {
                let text = &self.src[span.start..span.end];
                match text.char_indices().nth(24) {
                    Some((cut, _)) => format!("`{}…`", &text[..cut]),
                    None => format!("`{text}`"),
                }
            }
        };
        self.error(SyntaxErrorKind::Expected { expected, found }, span.start)
    }

    fn enter(&mut self, at: Span) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(SyntaxErrorKind::TooDeep { max: MAX_DEPTH }, at.start));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// A node over `children`, refused when the tree would grow higher than [`MAX_DEPTH`].
    fn node(&self, kind: ExprKind, span: Span, children: &[usize], at: Span) -> Result<Node, SyntaxError> {
        let height = 1 + children.iter().copied().max().unwrap_or(0);
        if height > MAX_DEPTH {
            return Err(self.error(SyntaxErrorKind::TooDeep { max: MAX_DEPTH }, at.start));
        }
        Ok(Node { expr: Expr::new(kind, span), height })
    }

    fn binary(&self, op: BinaryOp, at: Span, lhs: Node, rhs: Node) -> Result<Node, SyntaxError> {
        let span = lhs.expr.span.to(rhs.expr.span);
        let kind = ExprKind::Binary { op, lhs: Box::new(lhs.expr), rhs: Box::new(rhs.expr) };
        self.node(kind, span, &[lhs.height, rhs.height], at)
    }

    fn unary(&self, op: UnaryOp, at: Span, operand: Node) -> Result<Node, SyntaxError> {
        let span = at.to(operand.expr.span);
        self.node(ExprKind::Unary { op, operand: Box::new(operand.expr) }, span, &[operand.height], at)
    }

    /// A left-associative chain of `operand (op operand)*`.
    fn chain(
        &mut self,
        operator: fn(&TokenKind) -> Option<BinaryOp>,
        operand: fn(&mut Self) -> Result<Node, SyntaxError>,
    ) -> Result<Node, SyntaxError> {
        let mut lhs = operand(self)?;
        while let Some(op) = operator(&self.token.kind) {
            let at = self.bump()?.span;
            let rhs = operand(self)?;
            lhs = self.binary(op, at, lhs, rhs)?;
        }
        Ok(lhs)
    }

    fn or(&mut self) -> Result<Node, SyntaxError> {
        self.chain(|t| (*t == TokenKind::Or).then_some(BinaryOp::Or), Self::and)
    }

    fn and(&mut self) -> Result<Node, SyntaxError> {
        self.chain(|t| (*t == TokenKind::And).then_some(BinaryOp::And), Self::not)
    }

    fn not(&mut self) -> Result<Node, SyntaxError> {
        if self.token.kind != TokenKind::Not {
            return self.comparison();
        }
        let at = self.bump()?.span;
        self.enter(at)?;
        let operand = self.not()?;
        self.leave();
        self.unary(UnaryOp::Not, at, operand)
    }

    /// Comparisons do not associate: `a < b < c` is refused rather than read one way or the other.
    fn comparison(&mut self) -> Result<Node, SyntaxError> {
        let lhs = self.sum()?;
        if self.token.kind == TokenKind::Not {
            let mut ahead = self.lexer.clone();
            if let Ok(next) = ahead.next_token()
                && let Some(op @ (BinaryOp::In | BinaryOp::Contains | BinaryOp::Matches)) = comparison_op(&next.kind)
            {
                let kind = SyntaxErrorKind::NotBeforeOperator { op: op.symbol() };
                return Err(self.error(kind, self.token.span.start));
            }
        }
        let Some(op) = comparison_op(&self.token.kind) else {
            return Ok(lhs);
        };
        let at = self.bump()?.span;
        let rhs = self.sum()?;
        let node = self.binary(op, at, lhs, rhs)?;
        if comparison_op(&self.token.kind).is_some() {
            return Err(self.error(SyntaxErrorKind::ChainedComparison, self.token.span.start));
        }
        Ok(node)
    }

    fn sum(&mut self) -> Result<Node, SyntaxError> {
        let operator = |t: &TokenKind| match t {
            TokenKind::Plus => Some(BinaryOp::Add),
            TokenKind::Minus => Some(BinaryOp::Sub),
            _ => None,
        };
        self.chain(operator, Self::product)
    }

    fn product(&mut self) -> Result<Node, SyntaxError> {
        let operator = |t: &TokenKind| match t {
            TokenKind::Star => Some(BinaryOp::Mul),
            TokenKind::Slash => Some(BinaryOp::Div),
            TokenKind::Percent => Some(BinaryOp::Rem),
            _ => None,
        };
        self.chain(operator, Self::negation)
    }

    fn negation(&mut self) -> Result<Node, SyntaxError> {
        if self.token.kind != TokenKind::Minus {
            return self.primary();
        }
        let at = self.bump()?.span;
        self.enter(at)?;
        let operand = self.negation()?;
        self.leave();
        self.unary(UnaryOp::Neg, at, operand)
    }

    fn primary(&mut self) -> Result<Node, SyntaxError> {
        let span = self.token.span;
        let kind = match &self.token.kind {
            TokenKind::Number(n) => ExprKind::Number(*n),
            TokenKind::Duration(ms) => ExprKind::Duration(*ms),
            TokenKind::Text(text) => ExprKind::Text(text.clone()),
            TokenKind::True => ExprKind::Bool(true),
            TokenKind::False => ExprKind::Bool(false),
            TokenKind::Name(name) => {
                let name = name.clone();
                return self.variable_or_call(name);
            }
            TokenKind::LParen => return self.group(),
            TokenKind::LBracket => return self.list(),
            TokenKind::Not => return Err(self.error(SyntaxErrorKind::MisplacedNot, span.start)),
            _ => return Err(self.expected("an expression")),
        };
        self.bump()?;
        Ok(Node { expr: Expr::new(kind, span), height: 0 })
    }

    fn variable_or_call(&mut self, name: String) -> Result<Node, SyntaxError> {
        let name_span = self.bump()?.span;
        if self.token.kind != TokenKind::LParen {
            return Ok(Node { expr: Expr::new(ExprKind::Var(name), name_span), height: 0 });
        }
        self.bump()?;
        self.enter(name_span)?;
        let (args, close) = self.items(TokenKind::RParen, "`,` or `)`")?;
        self.leave();
        let heights: Vec<usize> = args.iter().map(|a| a.height).collect();
        let args = args.into_iter().map(|a| a.expr).collect();
        self.node(ExprKind::Call { name, args }, name_span.to(close), &heights, name_span)
    }

    fn group(&mut self) -> Result<Node, SyntaxError> {
        let open = self.bump()?.span;
        self.enter(open)?;
        let mut inner = self.or()?;
        let close = self.expect(TokenKind::RParen, "`)`")?.span;
        self.leave();
        inner.expr.span = open.to(close);
        Ok(inner)
    }

    fn list(&mut self) -> Result<Node, SyntaxError> {
        let open = self.bump()?.span;
        self.enter(open)?;
        let (items, close) = self.items(TokenKind::RBracket, "`,` or `]`")?;
        self.leave();
        let heights: Vec<usize> = items.iter().map(|i| i.height).collect();
        let items = items.into_iter().map(|i| i.expr).collect();
        self.node(ExprKind::List(items), open.to(close), &heights, open)
    }

    /// Comma-separated expressions up to `close`, after the opening token; returns the closing span.
    fn items(&mut self, close: TokenKind, expected: &'static str) -> Result<(Vec<Node>, Span), SyntaxError> {
        let mut items = Vec::new();
        if self.token.kind == close {
            return Ok((items, self.bump()?.span));
        }
        loop {
            items.push(self.or()?);
            if self.token.kind == TokenKind::Comma {
                self.bump()?;
            } else if self.token.kind == close {
                return Ok((items, self.bump()?.span));
            } else {
                return Err(self.expected(expected));
            }
        }
    }
}

fn comparison_op(token: &TokenKind) -> Option<BinaryOp> {
    Some(match token {
        TokenKind::EqEq => BinaryOp::Eq,
        TokenKind::NotEq => BinaryOp::Ne,
        TokenKind::Lt => BinaryOp::Lt,
        TokenKind::Le => BinaryOp::Le,
        TokenKind::Gt => BinaryOp::Gt,
        TokenKind::Ge => BinaryOp::Ge,
        TokenKind::In => BinaryOp::In,
        TokenKind::Contains => BinaryOp::Contains,
        TokenKind::Matches => BinaryOp::Matches,
        _ => return None,
    })
}

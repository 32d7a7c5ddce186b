//! Texts with variables: `Hi {{ user.name | there }}, you chose {{ goal }}.`
//!
//! A variable that is unset when the text is said renders as its fallback (after `|`), or as
//! nothing when there is none. Unknown variable names are refused when the program is validated.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var { name: String, fallback: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{{{` at byte {0} is never closed with `}}}}`")]
    Unclosed(usize),
    #[error("`{{{{ }}}}` at byte {0} names no variable")]
    Empty(usize),
    #[error("`{0}` is not a variable name")]
    BadName(String),
}

impl Template {
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = raw;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed(offset + open))?;
            let inner = &after[..close];
            let (name, fallback) = match inner.split_once('|') {
                Some((name, fallback)) => (name.trim(), fallback.trim()),
                None => (inner.trim(), ""),
            };
            if name.is_empty() {
                return Err(TemplateError::Empty(offset + open));
            }
            let valid = name.split('.').all(|segment| {
                let mut chars = segment.chars();
                chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if !valid {
                return Err(TemplateError::BadName(name.to_owned()));
            }
            parts.push(Part::Var { name: name.to_owned(), fallback: fallback.to_owned() });
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// The variable names the text uses.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var { name, .. } => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var { name, fallback } => match lookup(name) {
                    Some(value) => {
                        let _ = write!(out, "{value}");
                    }
                    None => out.push_str(fallback),
                },
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_render_with_their_fallback_when_unset() {
        let t = Template::parse("Hi {{ user.name | there }}, goal: {{goal}}!").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["user.name", "goal"]);
        assert_eq!(t.render(|_| None), "Hi there, goal: !");
        assert_eq!(t.render(|n| (n == "goal").then(|| "sleep".to_owned())), "Hi there, goal: sleep!");
    }

    #[test]
    fn broken_placeholders_are_refused() {
        assert_eq!(Template::parse("a {{ b"), Err(TemplateError::Unclosed(2)));
        assert_eq!(Template::parse("{{ }}"), Err(TemplateError::Empty(0)));
        assert_eq!(Template::parse("{{ 9x }}"), Err(TemplateError::BadName("9x".into())));
    }
}

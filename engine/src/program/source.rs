//! The program file as creators write it (YAML, or the same shape as JSON), before validation.
//!
//! Every field is optional here so that [`super::compile`] can report every problem at once, each
//! naming its step, instead of stopping at the first field serde dislikes.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramFile {
    /// Must match the file name when given (`programs/<id>.yaml`).
    pub id: Option<String>,
    pub title: Option<String>,
    #[serde(default)]
    pub triggers: TriggersFile,
    pub inactivity: Option<InactivityFile>,
    #[serde(default)]
    pub steps: Vec<StepFile>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggersFile {
    /// Enrol a user the first time they write.
    #[serde(default)]
    pub first_contact: bool,
    /// Deep-link payloads and commands: `/start sleep` or `/sleep` enrol into this program.
    #[serde(default)]
    pub commands: Vec<String>,
    /// A message containing one of these phrases (case-insensitive) enrols.
    #[serde(default)]
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InactivityFile {
    pub after: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepFile {
    pub id: Option<String>,
    /// Where to go after this step; the following step in the file when absent.
    pub next: Option<String>,

    // The kind of the step: exactly one of these keys.
    pub message: Option<String>,
    pub question: Option<String>,
    pub task: Option<String>,
    pub wait: Option<String>,
    pub branch: Option<Vec<ArmFile>>,
    pub chat: Option<String>,
    pub handoff: Option<String>,
    /// `end: "text"` or `end: true`.
    pub end: Option<EndFile>,

    // message / question
    pub choices: Option<Vec<ChoiceFile>>,
    /// `text` (default), `number`, `yes_no`, `timezone`; `choice` when `choices` are given.
    pub expect: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub save_as: Option<String>,
    /// Said when an answer is not valid, before asking again.
    pub retry: Option<String>,
    /// How many invalid answers are allowed before `on_fail` (default 2).
    pub attempts: Option<u32>,
    /// Where to go when the answers stay invalid; `next` when absent (the variable stays unset).
    pub on_fail: Option<String>,

    // task
    /// A duration (`1d`) or a local time of day (`"09:00"`).
    pub check_in: Option<String>,
    pub check_in_text: Option<String>,

    // branch
    #[serde(rename = "else")]
    pub otherwise: Option<String>,
    /// Where to go when a condition fails at run time; `else` when absent.
    pub on_error: Option<String>,

    // chat
    pub until: Option<String>,
    pub keywords: Option<Vec<String>>,
    pub max_turns: Option<u32>,

    // handoff
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EndFile {
    Flag(bool),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmFile {
    #[serde(rename = "if")]
    pub condition: String,
    pub goto: String,
}

/// `- sleep` (value and label the same; unquoted `1` or `true` count as text) or
/// `- { value: sleep, label: "Sleep better" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ChoiceFile {
    Plain(Scalar),
    Full { value: Scalar, label: Scalar },
}

/// A YAML scalar read as the text it was written as.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Integer(i64),
    Number(f64),
    Flag(bool),
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Scalar::Text(text) => text.clone(),
            Scalar::Integer(n) => n.to_string(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Flag(b) => b.to_string(),
        }
    }
}

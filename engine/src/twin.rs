//! What a conversation needs to know about its creator's twin, shared read-only by all of them.

use crate::channel::{ChannelsConfig, SecretRef};
use serde::{Deserialize, Serialize};

use crate::ids::{CreatorId, ProgramId, Slug};
use crate::knowledge::{Knowledge, KnowledgeDocument};
use crate::nudge::{NudgePolicy, TimeZone};
use crate::persona::{Persona, StyleReference};
use crate::ports::StoredProgram;
use crate::program::{BrokenProgram, ProgramSet};

/// The creator as stored: persona, settings and knowledge documents, one version at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatorProfile {
    pub slug: Slug,
    pub persona: Persona,
    #[serde(default)]
    pub replies: ReplySettings,
    /// Web origins allowed to open chat sockets (browsers send `Origin`); empty allows any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The program a new user starts on first contact (else one whose triggers say `first_contact`).
    #[serde(default)]
    pub default_program: Option<ProgramId>,
    #[serde(default)]
    pub nudges: NudgeSettings,
    #[serde(default)]
    pub model: ModelSettings,
    /// `channels.toml`: the creator's Telegram bot and WhatsApp number. Secrets stay as written
    /// (`env:NAME` references, normally); the server resolves them when it uses them.
    #[serde(default, skip_serializing_if = "ChannelsConfig::is_empty")]
    pub channels: ChannelsConfig,
    /// `[user_tokens]` in `creator.toml`: the creator's own backend signs its end users' tokens.
    /// Absent in profiles stored before it existed, which still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_tokens: Option<UserTokens>,
}

/// How the creator's own platform vouches for its end users: tokens it signs with `issuer` as
/// their `iss`, verified with a shared secret (HS256) or the public keys at `jwks_url`. Such a
/// token only ever makes its bearer an end user (`role: user`) of this creator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTokens {
    /// The `iss` these tokens carry; unique across creators, never the server's own issuer.
    pub issuer: String,
    /// The `aud` they must carry; the server's `TWIN_JWT_AUDIENCE` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// An HS256 secret shared with the creator's backend (at least 32 bytes), `env:NAME` normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
    /// Where the creator's platform publishes its public keys (RS256, ES256 or EdDSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
}

/// The creator's model choices (`[model]` in `creator.toml`); unset fields use the server's.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// The model name sent to the server (else `TWIN_LLM_MODEL`).
    pub model: Option<String>,
    pub temperature: Option<f32>,
    /// The most tokens one reply may use.
    pub max_reply_tokens: Option<u32>,
    /// The model's context size, which the prompt is fitted into.
    pub context_tokens: Option<u32>,
}

/// The creator's nudge rules: their default time zone for users who gave none, the policy, and
/// the inactivity nudge for users who are not in a program that has its own.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NudgeSettings {
    pub timezone: TimeZone,
    /// Sent when a user in free chat stays silent for `policy.inactivity_after`; none when unset.
    pub inactivity_text: Option<String>,
    pub policy: NudgePolicy,
}

/// How replies are produced and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplySettings {
    /// Send `delta` previews while a reply is generated.
    pub stream_previews: bool,
    /// How many recent messages go into a reply's context.
    pub history_window: usize,
    /// How many knowledge passages a reply may draw on.
    pub passages: usize,
    /// Draft approval: each twin reply waits for a human to approve, edit or reject it in the live
    /// view before it reaches the user (a conversation may override it).
    pub drafts: bool,
}

impl Default for ReplySettings {
    fn default() -> Self {
        Self { stream_previews: true, history_window: 20, passages: 3, drafts: false }
    }
}

/// An immutable view of one creator's twin, built when the twin loads or changes.
#[derive(Debug, Clone)]
pub struct TwinSnapshot {
    pub creator: CreatorId,
    pub profile: CreatorProfile,
    pub knowledge: Knowledge,
    /// Text the system prompt is built from; assembled once per snapshot.
    pub system_prompt: String,
    /// Every stored version of the creator's programs, compiled.
    pub programs: ProgramSet,
    /// The creator's style, measured once per version, that every twin reply is scored against.
    pub style: std::sync::Arc<StyleReference>,
}

impl TwinSnapshot {
    /// Builds the twin; program versions that do not compile are left out and returned, for the log.
    pub fn new(
        profile: CreatorProfile,
        documents: &[KnowledgeDocument],
        programs: &[StoredProgram],
    ) -> (Self, Vec<BrokenProgram>) {
        let system_prompt = crate::prompt::system_prompt(&profile.persona);
        let (programs, broken) = ProgramSet::build(programs);
        let twin = Self {
            creator: profile.slug.creator_id(),
            knowledge: Knowledge::build(documents),
            style: std::sync::Arc::new(StyleReference::new(&profile.persona, documents)),
            profile,
            system_prompt,
            programs,
        };
        (twin, broken)
    }
}

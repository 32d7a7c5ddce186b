//! Creator bundles: a twin as files (`creator.toml` + `knowledge/`), read from a folder, written
//! back to one, and the demo bundle built into the binary. Used by `twin serve --demo`,
//! `--creators DIR` and `twin creator import` / `export`.
//!
//! `creator.toml` is strict: an unknown key is an error naming the file and line, so a typo never
//! silently drops a setting. `programs/*.yaml` (or `.yml`, `.json`) are compiled on load, and a program with
//! problems refuses the whole bundle with every problem listed. `channels.toml` (optional) holds the
//! creator's Telegram bot and WhatsApp number, secrets as `env:NAME` references.

use std::fs;
use std::path::{Component, Path, PathBuf};

use include_dir::{Dir, include_dir};
use serde::{Deserialize, Serialize};
use twin_engine::channel::ChannelsConfig;
use twin_engine::ids::{IdError, ProgramId, Slug};
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::nudge::{NudgePolicy, TimeZone};
use twin_engine::persona::{Boundary, Example, Persona, Traits, Voice};
use twin_engine::ports::ProgramSource;
use twin_engine::program::{self, Problems};
use twin_engine::twin::{CreatorProfile, ModelSettings, NudgeSettings, ReplySettings, UserTokens};

/// A knowledge file larger than this is refused: it is the creator's prose, not a data dump.
pub const MAX_KNOWLEDGE_FILE_BYTES: u64 = 1024 * 1024;

/// Extensions of knowledge files that are loaded; any other file is skipped with a warning.
/// PDFs are read through their text layer (`crate::extract`).
const KNOWLEDGE_EXTENSIONS: &[&str] = &["md", "txt", "pdf"];

const CREATOR_FILE: &str = "creator.toml";
const CHANNELS_FILE: &str = "channels.toml";
const KNOWLEDGE_DIR: &str = "knowledge";
const PROGRAMS_DIR: &str = "programs";
/// Extensions of program files; any other file in `programs/` (a README) is left alone.
const PROGRAM_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

static DEMO: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../creators/demo");

/// One creator as read from (or written to) a bundle folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    pub profile: CreatorProfile,
    /// Sorted by path; paths are relative to `knowledge/` with `/` separators.
    pub documents: Vec<KnowledgeDocument>,
    /// Sorted by id; each source compiled without problems when the bundle was read.
    pub programs: Vec<ProgramSource>,
}

/// Why a bundle could not be read or written. Every message names the file it is about, so the
/// CLI can print it as one sentence and the creator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{} is not a creator bundle: it has no {CREATOR_FILE}", dir.display())]
    NotABundle { dir: PathBuf },
    #[error("the bundle folder name {name:?} ({}) is not a valid creator slug: it {reason}", dir.display())]
    BadSlug {
        dir: PathBuf,
        name: String,
        #[source]
        reason: IdError,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The position and the parser's message, not the parser's error: its own rendering spans
    /// several lines and would repeat the file's text.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Toml { path: PathBuf, line: Option<usize>, message: String },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{} {problems}", path.display())]
    Program { path: PathBuf, problems: Problems },
    #[error("{} is {size} bytes; a knowledge file may be at most {MAX_KNOWLEDGE_FILE_BYTES} bytes (1 MiB)", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{} is not valid UTF-8 text (knowledge files must be UTF-8 Markdown or plain text)", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("cannot export to {}: it already exists and is not empty", path.display())]
    NotEmpty { path: PathBuf },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `creator.toml` as written by a creator. Maps onto [`CreatorProfile`]; the slug is not in the
/// file but is the folder name.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatorFile {
    /// The name the twin speaks as (`persona.name`).
    name: String,
    #[serde(default)]
    persona: PersonaSection,
    #[serde(default)]
    replies: ReplySettings,
    #[serde(default)]
    web: WebSection,
    /// The program a new user starts on first contact (`programs/<id>.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_program: Option<ProgramId>,
    /// The creator's model choices; the server's when unset.
    #[serde(default)]
    model: ModelSettings,
    /// `timezone` and `inactivity_text`, plus the keys of [`NudgePolicy`]; checked in
    /// [`nudge_settings`] so an unknown key is still an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nudges: Option<toml::Table>,
    /// The creator's own platform signs its end users' tokens (docs/AUTH.md); checked in
    /// [`check_user_tokens`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_tokens: Option<UserTokens>,
}

/// `[persona]`: everything of [`Persona`] except the name, which is the top-level `name`
/// (format v2, docs/PERSONA.md). v1 files (`traits` as a list of words, `boundaries` as plain
/// topics) still read.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PersonaSection {
    role: String,
    methodology: String,
    values: Vec<String>,
    boundaries: Vec<Boundary>,
    #[serde(skip_serializing_if = "Traits::is_empty")]
    traits: Traits,
    voice: Voice,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    examples: Vec<Example>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WebSection {
    allowed_origins: Vec<String>,
}

impl CreatorFile {
    fn into_profile(self, slug: Slug, path: &Path) -> Result<CreatorProfile, BundleError> {
        let nudges = nudge_settings(self.nudges.unwrap_or_default()).map_err(|message| BundleError::Invalid {
            path: path.to_path_buf(),
            message: format!("[nudges]: {message}"),
        })?;
        let PersonaSection { role, traits, methodology, values, boundaries, voice, examples } = self.persona;
        let persona = Persona { name: self.name, role, traits, voice, methodology, values, boundaries, examples };
        persona
            .validate()
            .map_err(|e| BundleError::Invalid { path: path.to_path_buf(), message: format!("[persona]: {e}") })?;
        if let Some(user_tokens) = &self.user_tokens {
            check_user_tokens(user_tokens).map_err(|e| BundleError::Invalid {
                path: path.to_path_buf(),
                message: format!("[user_tokens]: {e}"),
            })?;
        }
        Ok(CreatorProfile {
            slug,
            persona,
            replies: self.replies,
            allowed_origins: self.web.allowed_origins,
            default_program: self.default_program,
            nudges,
            model: self.model,
            channels: Default::default(),
            user_tokens: self.user_tokens,
        })
    }

    fn of(profile: &CreatorProfile) -> Self {
        let persona = &profile.persona;
        Self {
            name: persona.name.clone(),
            persona: PersonaSection {
                role: persona.role.clone(),
                traits: persona.traits.clone(),
                methodology: persona.methodology.clone(),
                values: persona.values.clone(),
                boundaries: persona.boundaries.clone(),
                voice: persona.voice.clone(),
                examples: persona.examples.clone(),
            },
            replies: profile.replies.clone(),
            web: WebSection { allowed_origins: profile.allowed_origins.clone() },
            default_program: profile.default_program.clone(),
            model: profile.model.clone(),
            nudges: nudges_table(&profile.nudges),
            user_tokens: profile.user_tokens.clone(),
        }
    }
}

/// `[user_tokens]`: an issuer, and exactly one way to verify its tokens. Whether the issuer is the
/// server's own or another creator's is checked at import, where the server and the store are known
/// (`crate::auth::issuers::check_import`).
fn check_user_tokens(settings: &UserTokens) -> Result<(), String> {
    if settings.issuer.trim().is_empty() || settings.issuer.trim() != settings.issuer {
        return Err("`issuer` must be set, without surrounding spaces (the `iss` your tokens carry)".to_owned());
    }
    if settings.audience.as_deref().is_some_and(|a| a.trim().is_empty()) {
        return Err("`audience` must not be empty (leave it out for the server's TWIN_JWT_AUDIENCE)".to_owned());
    }
    match (&settings.secret, &settings.jwks_url) {
        (Some(_), Some(_)) | (None, None) => {
            Err("set exactly one of `secret` (HS256) and `jwks_url` (your platform's public keys)".to_owned())
        }
        (Some(secret), None) => match secret.env_name() {
            Some("") => Err("`secret` names no environment variable".to_owned()),
            Some(_) => Ok(()),
            None if secret.raw().len() < crate::auth::issuers::MIN_SECRET_BYTES => Err(format!(
                "`secret` must be at least {} bytes long (better: `env:NAME`)",
                crate::auth::issuers::MIN_SECRET_BYTES
            )),
            None => Ok(()),
        },
        (None, Some(url)) => check_jwks_url(url),
    }
}

/// `https://…`; plain `http://` only for the loopback (a platform on the same machine, tests).
fn check_jwks_url(url: &str) -> Result<(), String> {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
    let rest = loopback.iter().find_map(|prefix| url.strip_prefix(prefix));
    let ok = url.strip_prefix("https://").is_some_and(|host| !host.is_empty())
        || rest.is_some_and(|rest| rest.is_empty() || rest.starts_with(':') || rest.starts_with('/'));
    if ok { Ok(()) } else { Err(format!("`jwks_url` must be an https:// URL, not {url:?}")) }
}

/// `[nudges]` as written: the creator's default time zone and free-chat inactivity text, and the
/// policy's own keys (quiet hours, daily cap, inactivity_after, stale_after).
fn nudge_settings(mut table: toml::Table) -> Result<NudgeSettings, String> {
    let timezone = match table.remove("timezone") {
        None => TimeZone::default(),
        Some(toml::Value::String(name)) => name.parse().map_err(|e| format!("{e}"))?,
        Some(other) => return Err(format!("`timezone` must be a string like \"Europe/Berlin\", not {other}")),
    };
    let inactivity_text = match table.remove("inactivity_text") {
        None => None,
        Some(toml::Value::String(text)) => Some(text),
        Some(other) => return Err(format!("`inactivity_text` must be a string, not {other}")),
    };
    let policy: NudgePolicy =
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.message().to_owned())?;
    Ok(NudgeSettings { timezone, inactivity_text, policy })
}

fn nudges_table(settings: &NudgeSettings) -> Option<toml::Table> {
    if *settings == NudgeSettings::default() {
        return None;
    }
    let mut table = match toml::Value::try_from(&settings.policy) {
        Ok(toml::Value::Table(table)) => table,
        _ => toml::Table::new(),
    };
    table.insert("timezone".to_owned(), toml::Value::String(settings.timezone.name().to_owned()));
    if let Some(text) = &settings.inactivity_text {
        table.insert("inactivity_text".to_owned(), toml::Value::String(text.clone()));
    }
    Some(table)
}

/// Reads the bundle in `dir`; its slug is the folder's name.
pub fn load_dir(dir: &Path) -> Result<Bundle, BundleError> {
    let slug = slug_of(dir)?;
    let creator_path = dir.join(CREATOR_FILE);
    let text = match fs::read_to_string(&creator_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BundleError::NotABundle { dir: dir.to_path_buf() });
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(BundleError::NotUtf8 { path: creator_path });
        }
        Err(source) => return Err(BundleError::Read { path: creator_path, source }),
    };
    let mut profile = parse_creator_file(slug, &creator_path, &text)?;
    let channels_path = dir.join(CHANNELS_FILE);
    match fs::read_to_string(&channels_path) {
        Ok(text) => profile.channels = parse_channels_file(&channels_path, &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(BundleError::NotUtf8 { path: channels_path });
        }
        Err(source) => return Err(BundleError::Read { path: channels_path, source }),
    }

    let knowledge = dir.join(KNOWLEDGE_DIR);
    let mut files = Vec::new();
    if knowledge.is_dir() {
        collect_files(&knowledge, &mut files)?;
    }
    files.sort();
    let mut documents = Vec::new();
    for path in files {
        let Some(relative) = knowledge_path(&knowledge, &path) else { continue };
        if !is_knowledge_file(&path) {
            tracing::warn!(file = %path.display(), "skipping a knowledge file that is not .md, .txt or .pdf");
            continue;
        }
        let size = fs::metadata(&path).map_err(|source| BundleError::Read { path: path.clone(), source })?.len();
        let pdf = is_pdf(&path);
        if size > if pdf { crate::extract::MAX_PDF_BYTES } else { MAX_KNOWLEDGE_FILE_BYTES } {
            return Err(BundleError::TooLarge { path, size });
        }
        let bytes = fs::read(&path).map_err(|source| BundleError::Read { path: path.clone(), source })?;
        if pdf {
            let body = crate::extract::pdf_text(&bytes)
                .map_err(|e| BundleError::Invalid { path: path.clone(), message: e.to_string() })?;
            documents.push(KnowledgeDocument { path: relative, body });
        } else {
            documents.push(knowledge_document(&path, relative, bytes)?);
        }
    }
    documents.sort_by(|a, b| a.path.cmp(&b.path));

    let mut programs = Vec::new();
    let programs_dir = dir.join(PROGRAMS_DIR);
    if programs_dir.is_dir() {
        let entries =
            fs::read_dir(&programs_dir).map_err(|source| BundleError::Read { path: programs_dir.clone(), source })?;
        for entry in entries {
            let path = entry.map_err(|source| BundleError::Read { path: programs_dir.clone(), source })?.path();
            if !is_program_file(&path) {
                continue;
            }
            let size = fs::metadata(&path).map_err(|source| BundleError::Read { path: path.clone(), source })?.len();
            if size > program::MAX_SOURCE_BYTES as u64 {
                let message =
                    format!("is {size} bytes; a program file may be at most {} KiB", program::MAX_SOURCE_BYTES / 1024);
                return Err(BundleError::Invalid { path, message });
            }
            let bytes = fs::read(&path).map_err(|source| BundleError::Read { path: path.clone(), source })?;
            programs.push(program_source(&path, bytes)?);
        }
    }
    finish_bundle(profile, documents, programs, &creator_path)
}

/// Checks what spans files (the default program exists) and orders the programs.
fn finish_bundle(
    profile: CreatorProfile,
    documents: Vec<KnowledgeDocument>,
    mut programs: Vec<ProgramSource>,
    creator_path: &Path,
) -> Result<Bundle, BundleError> {
    programs.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(pair) = programs.windows(2).find(|pair| pair[0].id == pair[1].id) {
        let dir = creator_path.parent().unwrap_or(Path::new(".")).join(PROGRAMS_DIR);
        return Err(BundleError::Invalid {
            path: dir,
            message: format!(
                "two files define the program `{}` (one id per program: keep one of .yaml, .yml, .json)",
                pair[0].id
            ),
        });
    }
    if let Some(default) = &profile.default_program
        && !programs.iter().any(|p| p.id == *default)
    {
        return Err(BundleError::Invalid {
            path: creator_path.to_path_buf(),
            message: format!("`default_program = \"{default}\"` names no file in programs/"),
        });
    }
    Ok(Bundle { profile, documents, programs })
}

fn is_program_file(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| PROGRAM_EXTENSIONS.contains(&e))
}

/// A program file: its id is the file name without the extension; it must compile.
pub fn program_source(path: &Path, bytes: Vec<u8>) -> Result<ProgramSource, BundleError> {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let valid_name =
        !stem.is_empty() && stem.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    let id = ProgramId::parse(&stem).ok().filter(|_| valid_name).ok_or_else(|| BundleError::Invalid {
        path: path.to_path_buf(),
        message: "a program file name may only use lowercase letters, digits, `-` and `_`".to_owned(),
    })?;
    let source = String::from_utf8(bytes).map_err(|_| BundleError::Invalid {
        path: path.to_path_buf(),
        message: "is not valid UTF-8 text (program files must be UTF-8 YAML or JSON)".to_owned(),
    })?;
    program::compile(&id, 1, &source)
        .map_err(|problems| BundleError::Program { path: path.to_path_buf(), problems })?;
    Ok(ProgramSource { id, source })
}

/// The demo creator (slug `demo`), built into the binary from `creators/demo`.
pub fn demo() -> Bundle {
    // The embedded bundle is part of the source tree and `tests::the_demo_bundle_parses` parses it,
    // so failing here would be a build defect, not a runtime condition.
    parse_embedded(&DEMO).expect("the embedded demo bundle is valid (checked by a unit test)")
}

fn parse_embedded(root: &Dir<'static>) -> Result<Bundle, BundleError> {
    let slug = Slug::parse("demo").map_err(|reason| BundleError::BadSlug {
        dir: PathBuf::from("demo"),
        name: "demo".to_owned(),
        reason,
    })?;
    let creator_path = Path::new("demo").join(CREATOR_FILE);
    let file = root.get_file(CREATOR_FILE).ok_or_else(|| BundleError::NotABundle { dir: PathBuf::from("demo") })?;
    let text = file.contents_utf8().ok_or_else(|| BundleError::NotUtf8 { path: creator_path.clone() })?;
    let profile = parse_creator_file(slug, &creator_path, text)?;

    let mut documents = Vec::new();
    if let Some(knowledge) = root.get_dir(KNOWLEDGE_DIR) {
        let mut files = Vec::new();
        collect_embedded(knowledge, &mut files);
        for file in files {
            // Paths inside an include_dir tree are relative to the bundle root: `knowledge/…`.
            let path = Path::new("demo").join(file.path());
            let Some(relative) = knowledge_path(Path::new(KNOWLEDGE_DIR), file.path()) else { continue };
            if !is_knowledge_file(&path) {
                tracing::warn!(file = %path.display(), "skipping a knowledge file that is not .md, .txt or .pdf");
                continue;
            }
            let size = file.contents().len() as u64;
            if size > MAX_KNOWLEDGE_FILE_BYTES {
                return Err(BundleError::TooLarge { path, size });
            }
            documents.push(knowledge_document(&path, relative, file.contents().to_vec())?);
        }
    }
    documents.sort_by(|a, b| a.path.cmp(&b.path));

    let mut programs = Vec::new();
    if let Some(dir) = root.get_dir(PROGRAMS_DIR) {
        for file in dir.files() {
            let path = Path::new("demo").join(file.path());
            if is_program_file(&path) {
                programs.push(program_source(&path, file.contents().to_vec())?);
            }
        }
    }
    finish_bundle(profile, documents, programs, &creator_path)
}

/// Writes `bundle` as a bundle folder at `dir` (`creator.toml` and `knowledge/`), so that
/// [`load_dir`] reads the same bundle back when the folder is named after the slug.
///
/// `dir` must not exist or be empty. The bundle is written next to it first and moved into place
/// at the end, so a failed export leaves nothing half-written behind.
pub fn write_dir(bundle: &Bundle, dir: &Path) -> Result<(), BundleError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BundleError::NotEmpty { path: dir.to_path_buf() });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(BundleError::Read { path: dir.to_path_buf(), source }),
    }
    let creator_path = dir.join(CREATOR_FILE);
    let body = toml::to_string_pretty(&CreatorFile::of(&bundle.profile))
        .map_err(|e| BundleError::Invalid { path: creator_path.clone(), message: e.to_string() })?;
    let text = format!(
        "# Creator bundle of `{}`, exported by twin. The folder name is the slug.\n\n{body}",
        bundle.profile.slug
    );
    for document in &bundle.documents {
        if !is_safe_relative(&document.path) {
            return Err(BundleError::Invalid {
                path: dir.join(KNOWLEDGE_DIR).join(&document.path),
                message: "a knowledge path must be relative and stay inside knowledge/".to_owned(),
            });
        }
    }

    let staging = staging_dir(dir);
    let written = write_tree(bundle, &staging, &text).and_then(|()| {
        if dir.exists() {
            // Empty (checked above): make room for the rename.
            fs::remove_dir(dir).map_err(|source| BundleError::Write { path: dir.to_path_buf(), source })?;
        }
        fs::rename(&staging, dir).map_err(|source| BundleError::Write { path: dir.to_path_buf(), source })
    });
    if written.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    written
}

fn write_tree(bundle: &Bundle, root: &Path, creator_toml: &str) -> Result<(), BundleError> {
    let write = |path: &Path, bytes: &[u8]| -> Result<(), BundleError> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| BundleError::Write { path: parent.to_path_buf(), source })?;
        }
        fs::write(path, bytes).map_err(|source| BundleError::Write { path: path.to_path_buf(), source })
    };
    fs::create_dir_all(root).map_err(|source| BundleError::Write { path: root.to_path_buf(), source })?;
    write(&root.join(CREATOR_FILE), creator_toml.as_bytes())?;
    if !bundle.profile.channels.is_empty() {
        let body = toml::to_string_pretty(&bundle.profile.channels)
            .map_err(|e| BundleError::Invalid { path: root.join(CHANNELS_FILE), message: e.to_string() })?;
        write(&root.join(CHANNELS_FILE), body.as_bytes())?;
    }
    for document in &bundle.documents {
        write(&root.join(KNOWLEDGE_DIR).join(export_path(&document.path)), document.body.as_bytes())?;
    }
    for program in &bundle.programs {
        write(&root.join(PROGRAMS_DIR).join(format!("{}.yaml", program.id)), program.source.as_bytes())?;
    }
    Ok(())
}

/// A hidden sibling of `dir` to write into before the final rename (same filesystem).
fn staging_dir(dir: &Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "bundle".to_owned());
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join(format!(".{name}.export-{}", std::process::id()))
}

fn slug_of(dir: &Path) -> Result<Slug, BundleError> {
    // `.` and `..` have no file name of their own; the real folder name is the slug then.
    let named = match dir.file_name() {
        Some(_) => dir.to_path_buf(),
        None => dir.canonicalize().map_err(|source| BundleError::Read { path: dir.to_path_buf(), source })?,
    };
    let name = named.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Slug::parse(&name).map_err(|reason| BundleError::BadSlug { dir: dir.to_path_buf(), name, reason })
}

/// `channels.toml`: strict like `creator.toml`; a WhatsApp number id must be digits.
fn parse_channels_file(path: &Path, text: &str) -> Result<ChannelsConfig, BundleError> {
    let channels: ChannelsConfig = toml::from_str(text).map_err(|e| BundleError::Toml {
        path: path.to_path_buf(),
        line: e.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1),
        message: e.message().trim().to_owned(),
    })?;
    if let Some(whatsapp) = &channels.whatsapp
        && (whatsapp.phone_number_id.is_empty() || !whatsapp.phone_number_id.bytes().all(|b| b.is_ascii_digit()))
    {
        let message = "[whatsapp] phone_number_id must be the number's id from Meta (digits)".to_owned();
        return Err(BundleError::Invalid { path: path.to_path_buf(), message });
    }
    Ok(channels)
}

fn parse_creator_file(slug: Slug, path: &Path, text: &str) -> Result<CreatorProfile, BundleError> {
    let file: CreatorFile = toml::from_str(text).map_err(|e| BundleError::Toml {
        path: path.to_path_buf(),
        line: e.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1),
        message: e.message().trim().to_owned(),
    })?;
    if file.name.trim().is_empty() {
        return Err(BundleError::Invalid { path: path.to_path_buf(), message: "`name` must not be empty".to_owned() });
    }
    file.into_profile(slug, path)
}

fn knowledge_document(path: &Path, relative: String, bytes: Vec<u8>) -> Result<KnowledgeDocument, BundleError> {
    let body = String::from_utf8(bytes).map_err(|_| BundleError::NotUtf8 { path: path.to_path_buf() })?;
    Ok(KnowledgeDocument { path: relative, body })
}

/// Every regular file under `dir`, recursively, skipping hidden entries (`.DS_Store`, `.gitkeep`).
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BundleError> {
    let entries = fs::read_dir(dir).map_err(|source| BundleError::Read { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| BundleError::Read { path: dir.to_path_buf(), source })?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

fn collect_embedded(dir: &'static Dir<'static>, out: &mut Vec<&'static include_dir::File<'static>>) {
    for file in dir.files() {
        if !file.path().file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            out.push(file);
        }
    }
    for sub in dir.dirs() {
        collect_embedded(sub, out);
    }
}

/// `path` relative to the knowledge folder, with `/` separators (the same on every platform).
fn knowledge_path(knowledge: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(knowledge).ok()?;
    let parts: Vec<String> = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn is_pdf(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("pdf"))
}

/// Where a document is written on export: its path, except that a PDF's extracted text is written
/// as `<name>.pdf.txt` (the original file is not kept, only its text).
fn export_path(document: &str) -> String {
    if is_pdf(Path::new(document)) { format!("{document}.txt") } else { document.to_owned() }
}

fn is_knowledge_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| KNOWLEDGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A document path that, joined under `knowledge/`, stays inside it.
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty() && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8]) {
        fs::create_dir_all(path.parent().expect("has a parent")).expect("create folders");
        fs::write(path, bytes).expect("write file");
    }

    fn minimal_bundle(root: &Path, slug: &str, creator_toml: &str) -> PathBuf {
        let dir = root.join(slug);
        write(&dir.join(CREATOR_FILE), creator_toml.as_bytes());
        dir
    }

    #[test]
    fn the_demo_bundle_parses() {
        let bundle = parse_embedded(&DEMO).expect("the demo bundle is valid");
        let profile = &bundle.profile;
        assert_eq!(profile.slug.as_str(), "demo");
        assert_eq!(profile.persona.name, "Maya Chen");
        assert!(!profile.persona.voice.greeting.is_empty());
        assert!(!profile.persona.voice.fallback.is_empty());
        assert!(!profile.persona.boundaries.is_empty());
        assert!(bundle.documents.len() >= 4, "{:?}", bundle.documents.iter().map(|d| &d.path).collect::<Vec<_>>());
        assert!(bundle.documents.windows(2).all(|w| w[0].path < w[1].path));
        assert!(bundle.documents.iter().all(|d| d.path.ends_with(".md") && d.body.starts_with("# ")));
        assert_eq!(demo(), bundle);
    }

    #[test]
    fn the_demo_material_never_uses_the_demo_avoid_words() {
        let bundle = demo();
        for word in &bundle.profile.persona.voice.avoid_words {
            for document in &bundle.documents {
                assert!(!document.body.to_lowercase().contains(&word.to_lowercase()), "{word} in {}", document.path);
            }
        }
    }

    #[test]
    fn a_written_bundle_loads_back_unchanged() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut bundle = demo();
        bundle.profile.slug = Slug::parse("maya").expect("valid slug");
        bundle.profile.allowed_origins = vec!["https://maya.example".to_owned()];
        bundle
            .documents
            .push(KnowledgeDocument { path: "extra/notes.txt".to_owned(), body: "Plain text.\n".to_owned() });
        bundle.documents.sort_by(|a, b| a.path.cmp(&b.path));

        let dir = tmp.path().join("maya");
        write_dir(&bundle, &dir).expect("export");
        assert_eq!(load_dir(&dir).expect("import"), bundle);
        assert!(matches!(write_dir(&bundle, &dir), Err(BundleError::NotEmpty { .. })));
        let leftovers: Vec<_> = fs::read_dir(tmp.path()).expect("list").collect();
        assert_eq!(leftovers.len(), 1, "no staging folder is left behind");
    }

    #[test]
    fn a_misspelt_key_is_refused_naming_the_key_and_its_line() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = minimal_bundle(tmp.path(), "maya", "name = \"Maya\"\n\n[persona.voice]\ngreting = \"Hi\"\n");
        let err = load_dir(&dir).expect_err("a typo is an error");
        let text = err.to_string();
        assert!(matches!(err, BundleError::Toml { line: Some(4), .. }), "{text}");
        assert!(text.contains("greting") && text.contains("creator.toml") && text.contains("line 4"), "{text}");
    }

    #[test]
    fn a_v1_persona_still_loads_and_an_out_of_range_weight_is_refused_naming_its_key() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let v1 = "name = \"Maya\"\n[persona]\ntraits = [\"warm\", \"direct\"]\nboundaries = [\"medication\"]\n";
        let bundle = load_dir(&minimal_bundle(tmp.path(), "maya", v1)).expect("v1 is still read");
        assert_eq!(bundle.profile.persona.boundaries, [Boundary::hand_off("medication")]);
        assert!(!bundle.profile.persona.traits.is_empty());

        let bad = "name = \"Ana\"\n[persona.traits]\ncommunication = { direct = 1.5 }\n";
        let err = load_dir(&minimal_bundle(tmp.path(), "ana", bad)).expect_err("out of range");
        assert!(err.to_string().contains("persona.traits.communication.direct"), "{err}");
        let typo = "name = \"Bo\"\n[persona.traits]\ncommunication = { blunt = 0.5 }\n";
        let err = load_dir(&minimal_bundle(tmp.path(), "bo", typo)).expect_err("unknown option");
        assert!(err.to_string().contains("blunt") && err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn the_model_section_is_read() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = minimal_bundle(tmp.path(), "maya", "name = \"Maya\"\n[model]\ntemperature = 0.2\n");
        let bundle = load_dir(&dir).expect("the model section is fine");
        assert_eq!(bundle.profile.persona.name, "Maya");
        assert_eq!(bundle.profile.model.temperature, Some(0.2));
        let typo = minimal_bundle(tmp.path(), "ana", "name = \"Ana\"\n[model]\ntemprature = 0.2\n");
        assert!(load_dir(&typo).is_err(), "a misspelt model key is refused");
        assert_eq!(bundle.profile.replies, ReplySettings::default());
        assert!(bundle.documents.is_empty());
    }

    #[test]
    fn the_user_tokens_section_is_checked_and_written_back() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let good = "name = \"Ana\"\n[user_tokens]\nissuer = \"https://app.example.com\"\nsecret = \"env:ANA_SECRET\"\n";
        let dir = minimal_bundle(tmp.path(), "ana", good);
        let bundle = load_dir(&dir).expect("a secret issuer is fine");
        let tokens = bundle.profile.user_tokens.clone().expect("user_tokens");
        assert_eq!((tokens.issuer.as_str(), tokens.audience), ("https://app.example.com", None));
        let out = tmp.path().join("out").join("ana");
        write_dir(&bundle, &out).expect("written");
        assert_eq!(load_dir(&out).expect("read back").profile, bundle.profile);

        let refused = [
            ("both", "issuer = \"i\"\nsecret = \"env:S\"\njwks_url = \"https://x/jwks\""),
            ("neither", "issuer = \"i\""),
            ("short", "issuer = \"i\"\nsecret = \"too-short\""),
            ("plain-http", "issuer = \"i\"\njwks_url = \"http://example.com/jwks\""),
            ("no-issuer", "issuer = \"\"\nsecret = \"env:S\""),
            ("typo", "issuer = \"i\"\nsecret = \"env:S\"\naudiance = \"x\""),
        ];
        for (slug, section) in refused {
            let dir = minimal_bundle(tmp.path(), slug, &format!("name = \"Ana\"\n[user_tokens]\n{section}\n"));
            let error = load_dir(&dir).expect_err(slug).to_string();
            assert!(error.contains("user_tokens") || error.contains("audiance"), "{slug}: {error}");
        }
        let loopback = "name = \"Ana\"\n[user_tokens]\nissuer = \"i\"\njwks_url = \"http://127.0.0.1:9/jwks\"\n";
        assert!(load_dir(&minimal_bundle(tmp.path(), "local", loopback)).is_ok(), "loopback http is allowed");
    }

    #[test]
    fn channels_toml_is_read_strictly_and_written_back() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = minimal_bundle(tmp.path(), "maya", "name = \"Maya\"\n");
        let channels = "[telegram]\nbot_token = \"env:TG_TOKEN\"\nwebhook_secret = \"env:TG_SECRET\"\n\n\
                        [whatsapp]\nphone_number_id = \"1234567890\"\naccess_token = \"env:WA_TOKEN\"\n\
                        app_secret = \"env:WA_SECRET\"\nverify_token = \"env:WA_VERIFY\"\n\
                        nudge_template = { name = \"checkin\", language = \"de\" }\n";
        write(&dir.join("channels.toml"), channels.as_bytes());
        let bundle = load_dir(&dir).expect("channels.toml is read");
        let telegram = bundle.profile.channels.telegram.as_ref().expect("telegram");
        assert_eq!(telegram.bot_token.env_name(), Some("TG_TOKEN"));
        assert_eq!(bundle.profile.channels.whatsapp.as_ref().expect("whatsapp").phone_number_id, "1234567890");

        let out = tmp.path().join("export").join("maya");
        write_dir(&bundle, &out).expect("export");
        assert_eq!(load_dir(&out).expect("reads back"), bundle);

        write(&dir.join("channels.toml"), b"[telegram]\nbot_token = \"env:X\"\n");
        let err = load_dir(&dir).expect_err("webhook_secret is required");
        assert!(err.to_string().contains("channels.toml") && err.to_string().contains("webhook_secret"), "{err}");
        write(&dir.join("channels.toml"), b"[whatsapp]\nphone_number_id = \"+49 151\"\naccess_token = \"a\"\napp_secret = \"b\"\nverify_token = \"c\"\n");
        let err = load_dir(&dir).expect_err("not a number id");
        assert!(err.to_string().contains("phone_number_id"), "{err}");
    }

    #[test]
    fn a_pdf_in_knowledge_is_read_through_its_text_and_exported_as_text() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = minimal_bundle(tmp.path(), "maya", "name = \"Maya\"\n");
        write(&dir.join("knowledge/guide.pdf"), &crate::extract::tests::tiny_pdf("Protect your first hour."));
        let bundle = load_dir(&dir).expect("a bundle with a PDF");
        assert_eq!(bundle.documents.len(), 1);
        assert_eq!(bundle.documents[0].path, "guide.pdf");
        assert!(bundle.documents[0].body.contains("Protect your first hour."));

        let out = tmp.path().join("export");
        write_dir(&bundle, &out).expect("export");
        let text = std::fs::read_to_string(out.join("knowledge/guide.pdf.txt")).expect("the text is exported");
        assert_eq!(text, bundle.documents[0].body);

        write(&dir.join("knowledge/broken.pdf"), b"%PDF-1.4 nonsense");
        let error = load_dir(&dir).expect_err("a broken PDF refuses the bundle").to_string();
        assert!(error.contains("broken.pdf") && error.contains("not a readable PDF"), "{error}");
    }

    const PROGRAM: &str =
        "steps:\n  - id: hi\n    question: \"Name?\"\n    save_as: name\n  - id: bye\n    end: \"Bye {{ name }}\"\n";

    #[test]
    fn programs_and_the_nudge_section_are_read_and_written_back_unchanged() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let toml = "name = \"Maya\"\ndefault_program = \"intro\"\n[nudges]\ntimezone = \"America/New_York\"\ndaily_cap = 1\nquiet_hours = \"off\"\ninactivity_text = \"Hi?\"\n";
        let dir = minimal_bundle(tmp.path(), "maya", toml);
        write(&dir.join("programs/intro.yaml"), PROGRAM.as_bytes());
        write(&dir.join("programs/README.md"), b"# not a program");
        let bundle = load_dir(&dir).expect("valid bundle");
        assert_eq!(bundle.programs.len(), 1);
        assert_eq!(bundle.programs[0].id.as_str(), "intro");
        assert_eq!(bundle.profile.default_program.as_ref().map(|p| p.as_str()), Some("intro"));
        let nudges = &bundle.profile.nudges;
        assert_eq!(nudges.timezone.name(), "America/New_York");
        assert_eq!(nudges.policy.daily_cap, 1);
        assert_eq!(nudges.policy.quiet_hours, None);
        assert_eq!(nudges.inactivity_text.as_deref(), Some("Hi?"));

        let out = tmp.path().join("out").join("maya");
        write_dir(&bundle, &out).expect("export");
        assert_eq!(load_dir(&out).expect("reads back"), bundle);
    }

    #[test]
    fn an_unknown_nudge_setting_or_a_missing_default_program_is_refused() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = minimal_bundle(tmp.path(), "maya", "name = \"Maya\"\n[nudges]\ndaily_cpa = 1\n");
        let err = load_dir(&dir).expect_err("typo");
        assert!(err.to_string().contains("daily_cpa"), "{err}");

        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = minimal_bundle(tmp.path(), "maya", "name = \"Maya\"\ndefault_program = \"reset\"\n");
        let err = load_dir(&dir).expect_err("no such program");
        assert!(err.to_string().contains("default_program = \"reset\""), "{err}");
    }

    #[test]
    fn a_program_with_problems_refuses_the_bundle_listing_every_problem() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = minimal_bundle(tmp.path(), "maya", "name = \"Maya\"\n");
        let broken = "steps:\n  - id: a\n    message: hi\n    next: nowhere\n  - id: a\n    wait: soon\n";
        write(&dir.join("programs/broken.yaml"), broken.as_bytes());
        let err = load_dir(&dir).expect_err("broken program");
        let text = err.to_string();
        assert!(matches!(err, BundleError::Program { .. }), "{text}");
        assert!(text.contains("programs/broken.yaml"), "{text}");
        assert!(text.contains("`next: nowhere`"), "{text}");
        assert!(text.contains("used by more than one step"), "{text}");
        assert!(text.contains("`wait: soon`"), "{text}");
    }

    #[test]
    fn a_folder_name_that_is_not_a_slug_is_refused() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = minimal_bundle(tmp.path(), "Maya Chen", "name = \"Maya\"\n");
        let err = load_dir(&dir).expect_err("not a slug");
        assert!(matches!(err, BundleError::BadSlug { reason: IdError::BadSlug, .. }), "{err}");
        assert!(err.to_string().contains("\"Maya Chen\""), "{err}");
    }

    #[test]
    fn a_knowledge_file_that_is_not_utf8_is_refused_naming_the_file() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = minimal_bundle(tmp.path(), "maya", "name = \"Maya\"\n");
        write(&dir.join("knowledge/good.md"), b"# Fine\nText.");
        write(&dir.join("knowledge/latin1.md"), b"caf\xe9 au lait");
        let err = load_dir(&dir).expect_err("not UTF-8");
        assert!(matches!(&err, BundleError::NotUtf8 { path } if path.ends_with("knowledge/latin1.md")), "{err}");
        assert!(err.to_string().contains("latin1.md"), "{err}");
    }

    #[test]
    fn knowledge_is_sorted_other_extensions_are_skipped_and_big_files_refused() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = minimal_bundle(tmp.path(), "maya", "name = \"Maya\"\n");
        write(&dir.join("knowledge/b.txt"), b"B");
        write(&dir.join("knowledge/a.md"), b"A");
        write(&dir.join("knowledge/sub/c.md"), b"C");
        write(&dir.join("knowledge/photo.png"), b"\x89PNG");
        write(&dir.join("knowledge/.DS_Store"), b"\0");
        let paths: Vec<String> = load_dir(&dir).expect("loads").documents.into_iter().map(|d| d.path).collect();
        assert_eq!(paths, ["a.md", "b.txt", "sub/c.md"]);

        write(&dir.join("knowledge/huge.md"), &vec![b'a'; MAX_KNOWLEDGE_FILE_BYTES as usize + 1]);
        let err = load_dir(&dir).expect_err("too large");
        assert!(matches!(&err, BundleError::TooLarge { path, .. } if path.ends_with("huge.md")), "{err}");
    }

    #[test]
    fn a_folder_without_creator_toml_is_not_a_bundle() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("maya");
        fs::create_dir_all(&dir).expect("create");
        assert!(matches!(load_dir(&dir), Err(BundleError::NotABundle { .. })));
        let empty_name = minimal_bundle(tmp.path(), "nameless", "name = \"  \"\n");
        assert!(matches!(load_dir(&empty_name), Err(BundleError::Invalid { .. })));
    }

    #[test]
    fn an_export_refuses_paths_that_leave_the_knowledge_folder() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut bundle = demo();
        bundle.documents.push(KnowledgeDocument { path: "../escape.md".to_owned(), body: "x".to_owned() });
        let err = write_dir(&bundle, &tmp.path().join("demo")).expect_err("unsafe path");
        assert!(matches!(err, BundleError::Invalid { .. }), "{err}");
        assert!(fs::read_dir(tmp.path()).expect("list").next().is_none(), "nothing written");
    }
}

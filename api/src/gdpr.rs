//! GDPR export and erasure, above the store: the archives the export routes answer with, the audit
//! record every export and erasure leaves (without personal data), and the place where the stores
//! outside the database join an erasure.
//!
//! The store does the database part in one transaction per erasure (`twin_store::gdpr`), the engine
//! serialises it with the conversation's own events (`EngineHandle::erase_user`), and the routes
//! (`routes/gdpr.rs`) put them together. docs/GDPR.md says what is where and why.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};
use twin_engine::{CreatorId, UserId};
use twin_store::gdpr::{CreatorExport, UserExport};
use zip::write::SimpleFileOptions;

use crate::auth::Role;
use crate::bundle::Bundle;

/// The archive formats, named in each archive's `export.json`.
pub const USER_FORMAT: &str = "twin-user-export/1";
pub const CREATOR_FORMAT: &str = "twin-creator-export/1";

/// Redis key patterns that hold an end user's data, erased with the user (`{creator}` and `{user}`
/// are filled in). Twin keeps no Redis keys yet; when rate limits or caches keyed by user land in
/// Redis, their patterns go here and the erase route deletes them (SCAN + UNLINK) after the
/// database transaction, counting them in the report as `redis`.
pub const USER_KEY_PATTERNS: &[&str] = &[];
/// The same for a whole creator (`{creator}`).
pub const CREATOR_KEY_PATTERNS: &[&str] = &[];

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    UserExport,
    UserErasure,
    CreatorExport,
    CreatorErasure,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::UserExport => "gdpr.user_export",
            AuditAction::UserErasure => "gdpr.user_erasure",
            AuditAction::CreatorExport => "gdpr.creator_export",
            AuditAction::CreatorErasure => "gdpr.creator_erasure",
        }
    }
}

/// One audit record of an export or erasure. It holds no personal data of the end user: their id
/// only as [`pseudonym`], and row counts, never content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub action: AuditAction,
    /// The tenant acted on.
    pub creator: CreatorId,
    /// Who asked: the token's role and subject (an operator or the creator, not an end user).
    pub actor_role: Role,
    pub actor: String,
    /// The end user, as [`pseudonym`]; `None` for a whole creator.
    pub subject: Option<String>,
    /// Rows per table (an erasure: removed; an export: exported).
    pub rows: BTreeMap<String, u64>,
}

/// Where audit records go. The tracing implementation below logs them; the integrator wires the
/// audit table of the accounts work (issue 7) in here.
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync + 'static {
    async fn record(&self, record: AuditRecord);
}

/// Logs each record as one structured line on the `twin::audit` target.
pub struct TracingAudit;

#[async_trait::async_trait]
impl AuditSink for TracingAudit {
    async fn record(&self, record: AuditRecord) {
        let rows = serde_json::to_string(&record.rows).unwrap_or_default();
        tracing::info!(
            target: "twin::audit",
            action = record.action.as_str(),
            creator = %record.creator,
            actor_role = record.actor_role.as_str(),
            actor = %record.actor,
            subject = record.subject.as_deref().unwrap_or("-"),
            rows = %rows,
            "audit"
        );
    }
}

/// A stable stand-in for an end user in audit records: hex SHA-256 of the tenant and the user id,
/// so the export and the erasure of one user can be matched without the record naming them.
pub fn pseudonym(creator: CreatorId, user: &UserId) -> String {
    let mut hash = Sha256::new();
    hash.update(creator.0.as_bytes());
    hash.update(user.as_str().as_bytes());
    hex::encode(hash.finalize())
}

/// Rows per section of a user's export, for its manifest and audit record.
pub fn user_counts(export: &UserExport) -> BTreeMap<String, u64> {
    BTreeMap::from([
        ("conversations".to_owned(), u64::from(export.conversation.is_some())),
        ("messages".to_owned(), export.messages.len() as u64),
        ("nudges".to_owned(), export.nudges.len() as u64),
        ("outbox".to_owned(), export.outbox.len() as u64),
        ("step_entries".to_owned(), export.step_entries.len() as u64),
        ("inbox".to_owned(), export.inbox.len() as u64),
        ("channel_identities".to_owned(), export.identities.len() as u64),
        ("link_codes".to_owned(), export.link_codes.len() as u64),
    ])
}

/// Rows per section of a creator's export.
pub fn creator_counts(export: &CreatorExport) -> BTreeMap<String, u64> {
    BTreeMap::from([
        ("knowledge_documents".to_owned(), export.documents.len() as u64),
        ("programs".to_owned(), export.programs.len() as u64),
        ("knowledge_ingestion".to_owned(), export.ingestion.len() as u64),
        ("knowledge_vectors".to_owned(), export.vectors.len() as u64),
        ("conversations".to_owned(), export.conversations.len() as u64),
        ("messages".to_owned(), export.messages.len() as u64),
        ("nudges".to_owned(), export.nudges.len() as u64),
        ("outbox".to_owned(), export.outbox.len() as u64),
        ("step_entries".to_owned(), export.step_entries.len() as u64),
        ("inbox".to_owned(), export.inbox.len() as u64),
        ("channel_identities".to_owned(), export.identities.len() as u64),
        ("link_codes".to_owned(), export.link_codes.len() as u64),
    ])
}

/// Builds a zip archive in memory, one file after the other (stored, not compressed: exports are
/// small and mostly read once).
struct Archive {
    zip: zip::ZipWriter<std::io::Cursor<Vec<u8>>>,
    files: Vec<String>,
}

impl Archive {
    fn new() -> Self {
        Self { zip: zip::ZipWriter::new(std::io::Cursor::new(Vec::new())), files: Vec::new() }
    }

    fn file(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        self.zip.start_file(name, options)?;
        self.zip.write_all(bytes)?;
        self.files.push(name.to_owned());
        Ok(())
    }

    fn json(&mut self, name: &str, value: &impl Serialize) -> anyhow::Result<()> {
        self.file(name, &serde_json::to_vec_pretty(value)?)
    }

    /// One JSON document per line: long histories stay streamable.
    fn jsonl<T: Serialize>(&mut self, name: &str, rows: &[T]) -> anyhow::Result<()> {
        let mut bytes = Vec::new();
        for row in rows {
            serde_json::to_writer(&mut bytes, row)?;
            bytes.push(b'\n');
        }
        self.file(name, &bytes)
    }

    /// Writes `export.json` (the manifest, naming every other file) and closes the archive.
    fn finish(mut self, manifest: serde_json::Value) -> anyhow::Result<Vec<u8>> {
        let mut manifest = manifest;
        manifest["files"] = serde_json::json!(self.files);
        self.json("export.json", &manifest)?;
        Ok(self.zip.finish()?.into_inner())
    }
}

/// What the user's archive says about the knowledge section.
const NO_UPLOADS: &str = "End users cannot upload knowledge to Twin; the creator's knowledge documents are the \
     creator's and are not part of a user's data.";

/// The archive of one end user: `export.json` (manifest and counts), `conversation.json` (with
/// its state), `messages.jsonl`, `nudges.json`, `outbox.json`, `step_entries.json`, `inbox.jsonl`, `identities.json`,
/// `link_codes.json` and `knowledge.json`.
pub fn user_archive(export: &UserExport, exported_at_ms: i64) -> anyhow::Result<Vec<u8>> {
    let mut archive = Archive::new();
    archive.json("conversation.json", &export.conversation)?;
    archive.jsonl("messages.jsonl", &export.messages)?;
    archive.json("nudges.json", &export.nudges)?;
    archive.json("outbox.json", &export.outbox)?;
    archive.json("step_entries.json", &export.step_entries)?;
    archive.jsonl("inbox.jsonl", &export.inbox)?;
    archive.json("identities.json", &export.identities)?;
    archive.json("link_codes.json", &export.link_codes)?;
    archive.json("knowledge.json", &serde_json::json!({"uploaded": export.uploaded_knowledge, "note": NO_UPLOADS}))?;
    archive.finish(serde_json::json!({
        "format": USER_FORMAT,
        "creator": export.creator,
        "user": export.user,
        "exported_at_ms": exported_at_ms,
        "counts": user_counts(export),
    }))
}

/// The archive of a whole creator: `export.json`, the creator bundle under `bundle/<slug>/` (as
/// `twin import` reads it back), every program version, the ingestion state and vector metadata,
/// and every user's rows table by table (`*.jsonl`).
pub fn creator_archive(export: &CreatorExport, bundle: &Bundle, exported_at_ms: i64) -> anyhow::Result<Vec<u8>> {
    let mut archive = Archive::new();
    for (path, bytes) in bundle_files(bundle)? {
        archive.file(&format!("bundle/{}/{path}", bundle.profile.slug), &bytes)?;
    }
    archive.json("profile.json", &export.profile)?;
    archive.json("programs.json", &export.programs)?;
    archive.json("knowledge_ingestion.json", &export.ingestion)?;
    archive.jsonl("knowledge_vectors.jsonl", &export.vectors)?;
    archive.jsonl("conversations.jsonl", &export.conversations)?;
    archive.jsonl("messages.jsonl", &export.messages)?;
    archive.jsonl("nudges.jsonl", &export.nudges)?;
    archive.jsonl("outbox.jsonl", &export.outbox)?;
    archive.jsonl("step_entries.jsonl", &export.step_entries)?;
    archive.jsonl("inbox.jsonl", &export.inbox)?;
    archive.json("identities.json", &export.identities)?;
    archive.json("link_codes.json", &export.link_codes)?;
    archive.finish(serde_json::json!({
        "format": CREATOR_FORMAT,
        "creator": export.creator,
        "slug": export.slug,
        "version": export.version,
        "exported_at_ms": exported_at_ms,
        "counts": creator_counts(export),
        "note": "knowledge_vectors lists the embedded chunks without their floats: they are computed from the documents.",
    }))
}

/// The files of a bundle folder, as `bundle::write_dir` writes them, relative to the folder.
fn bundle_files(bundle: &Bundle) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let scratch = std::env::temp_dir().join(format!("twin-export-{}", uuid::Uuid::new_v4().simple()));
    let folder = scratch.join(bundle.profile.slug.as_str());
    let written = crate::bundle::write_dir(bundle, &folder).map_err(anyhow::Error::from).and_then(|()| {
        let mut files = Vec::new();
        collect(&folder, &folder, &mut files)?;
        files.sort();
        Ok(files)
    });
    let _ = std::fs::remove_dir_all(&scratch);
    written
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else {
            let relative =
                path.strip_prefix(root)?.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>();
            files.push((relative.join("/"), std::fs::read(&path)?));
        }
    }
    Ok(())
}

/// Audit records into the audit log (`twin_store::Store::audit`), in the tenant acted on. A record
/// that cannot be written is logged as an error with the same fields, never dropped silently.
pub struct StoreAudit {
    pub store: twin_store::Store,
    pub clock: std::sync::Arc<dyn twin_engine::ports::Clock>,
}

#[async_trait::async_trait]
impl AuditSink for StoreAudit {
    async fn record(&self, record: AuditRecord) {
        let entry = twin_store::AuditEntry {
            creator: Some(record.creator),
            at: self.clock.now(),
            actor: format!("{}:{}", record.actor_role.as_str(), record.actor),
            action: record.action.as_str().to_owned(),
            target: record.subject.clone(),
            client_address: None,
            detail: serde_json::json!({ "rows": record.rows }),
        };
        if let Err(error) = self.store.audit(&entry).await {
            tracing::error!(%error, action = record.action.as_str(), creator = %record.creator, "an audit record could not be stored");
            TracingAudit.record(record).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store finds an unlinked channel user's inbox rows by inverting the inbox's own naming.
    #[test]
    fn the_stores_default_identity_inverts_the_inboxs_default_user() {
        use twin_engine::channel::ChannelKind;
        for channel in [ChannelKind::Telegram, ChannelKind::WhatsApp, ChannelKind::Web] {
            let user = crate::channels::identity::default_user(channel, "4915112345").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(twin_store::gdpr::default_identity(&user), Some((channel, "4915112345")));
        }
    }

    #[test]
    fn a_pseudonym_is_stable_per_tenant_and_does_not_contain_the_user_id() {
        let user = UserId::parse("alice-42").unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (CreatorId(uuid::Uuid::from_u128(1)), CreatorId(uuid::Uuid::from_u128(2)));
        assert_eq!(pseudonym(a, &user), pseudonym(a, &user));
        assert_ne!(pseudonym(a, &user), pseudonym(b, &user));
        assert!(!pseudonym(a, &user).contains("alice"));
        assert_eq!(pseudonym(a, &user).len(), 64);
    }
}

//! Secrets at rest: what a creator sets through the REST API (channel tokens, app secrets) is
//! stored sealed — AES-256-GCM under the server's `TWIN_SECRET_KEY` — and opened only when a
//! channel client is built. The database alone never yields a secret.
//!
//! A sealed value is `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`; the key id (the first
//! bytes of the key's SHA-256) tells a changed key apart from a damaged value. Without
//! `TWIN_SECRET_KEY` a key is generated once in the data dir; several nodes must share one key.
//!
//! Other secrets of the server are derived from the same key, one per purpose ([`SecretBox::subkey`]):
//! the web widget signs its visitor tokens with one.

use std::path::Path;

use anyhow::Context;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use twin_channels::{SecretError, SecretSource};

use crate::settings::Settings;

const KEY_FILE: &str = "secret-key";
const KEY_LEN: usize = 32;
const VERSION: &str = "v1";

/// The sealing key; opens and seals values, and resolves `env:` references from the process
/// environment.
pub struct SecretBox {
    key: LessSafeKey,
    key_id: String,
    /// HMAC-SHA256 keyed with the sealing key: derives the subkeys.
    derive: hmac::Key,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl SecretBox {
    /// `TWIN_SECRET_KEY` (64 hex digits or base64 of 32 bytes), else the key in the data dir,
    /// generated on first use.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let bytes = match &settings.secret_key {
            Some(text) => {
                parse_key(text.expose()).context("TWIN_SECRET_KEY must be 32 bytes: 64 hex digits or base64")?
            }
            None => data_dir_key(&settings.data_dir)?,
        };
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(bytes.len() == KEY_LEN, "a secret key has {KEY_LEN} bytes, not {}", bytes.len());
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| anyhow::anyhow!("bad key"))?);
        let key_id = URL_SAFE_NO_PAD.encode(&digest(&SHA256, bytes).as_ref()[..6]);
        Ok(Self { key, key_id, derive: hmac::Key::new(hmac::HMAC_SHA256, bytes) })
    }

    /// A 32-byte key for one `purpose`, derived from the sealing key (HMAC-SHA256 of a label
    /// naming the purpose): the same on every node that shares `TWIN_SECRET_KEY`, different for
    /// each purpose, and revealing nothing of the sealing key.
    pub fn subkey(&self, purpose: &str) -> [u8; KEY_LEN] {
        let tag = hmac::sign(&self.derive, format!("twin subkey v1: {purpose}").as_bytes());
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(tag.as_ref());
        key
    }

    /// Seals `plaintext`: a fresh random nonce each time, so equal secrets seal differently.
    pub fn seal(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut sealed = plaintext.as_bytes().to_vec();
        // Sealing fails only for inputs over the cipher's limit (64 GiB): not a secret's size.
        if self.key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut sealed).is_err() {
            unreachable!("AES-GCM seals any input under 64 GiB");
        }
        let mut payload = nonce.to_vec();
        payload.extend_from_slice(&sealed);
        format!("{VERSION}.{}.{}", self.key_id, URL_SAFE_NO_PAD.encode(payload))
    }

    /// Opens what [`SecretBox::seal`] wrote with the same key.
    pub fn open_sealed(&self, sealed: &str) -> Result<String, SecretError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(key_id), Some(payload)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SecretError::Sealed("not a sealed value".to_owned()));
        };
        if key_id != self.key_id {
            return Err(SecretError::Sealed(format!("it was sealed with another key ({key_id})")));
        }
        let mut payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| SecretError::Sealed("damaged".to_owned()))?;
        if payload.len() < NONCE_LEN {
            return Err(SecretError::Sealed("damaged".to_owned()));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&payload[..NONCE_LEN]);
        let opened = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut payload[NONCE_LEN..])
            .map_err(|_| SecretError::Sealed("damaged or sealed with another key".to_owned()))?;
        String::from_utf8(opened.to_vec()).map_err(|_| SecretError::Sealed("damaged".to_owned()))
    }
}

impl SecretSource for SecretBox {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn open(&self, ciphertext: &str) -> Result<String, SecretError> {
        self.open_sealed(ciphertext)
    }
}

fn parse_key(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let bytes = if text.len() == KEY_LEN * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()?
    } else {
        STANDARD.decode(text).or_else(|_| URL_SAFE_NO_PAD.decode(text)).ok()?
    };
    (bytes.len() == KEY_LEN).then_some(bytes)
}

/// The key in the data dir (hex, readable by the owner only), created when missing.
fn data_dir_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => return parse_key(&text).with_context(|| format!("{} does not hold a 32-byte key", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let mut bytes = vec![0u8; KEY_LEN];
    rand::rng().fill_bytes(&mut bytes);
    if crate::auth::keyfiles::create_private_file(&path, &hex::encode(&bytes))
        .with_context(|| format!("cannot write {}", path.display()))?
    {
        tracing::info!(path = %path.display(), "generated the key that seals secrets stored through the API");
        Ok(bytes)
    } else {
        // Another process (`twin serve` and a CLI command at once) wrote it first: use theirs.
        data_dir_key(data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_box(byte: u8) -> SecretBox {
        SecretBox::from_bytes(&[byte; KEY_LEN]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_sealed_secret_opens_with_its_key_only() {
        let sealer = secret_box(7);
        let sealed = sealer.seal("123456:bot-token");
        assert!(!sealed.contains("bot-token"));
        assert_ne!(sealed, sealer.seal("123456:bot-token"), "a fresh nonce per seal");
        assert_eq!(sealer.open_sealed(&sealed).as_deref(), Ok("123456:bot-token"));
        let other = secret_box(8);
        assert!(matches!(other.open_sealed(&sealed), Err(SecretError::Sealed(m)) if m.contains("another key")));
    }

    #[test]
    fn a_damaged_value_is_refused_not_garbled() {
        let sealer = secret_box(7);
        let sealed = sealer.seal("abc");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap_or_else(|e| panic!("{e}"));
        assert!(sealer.open_sealed(&tampered).is_err());
        assert!(sealer.open_sealed("v1.x").is_err());
        assert!(sealer.open_sealed("").is_err());
    }

    #[test]
    fn subkeys_differ_by_purpose_and_key_and_stay_put() {
        let sealer = secret_box(7);
        assert_eq!(sealer.subkey("widget visitors"), secret_box(7).subkey("widget visitors"));
        assert_ne!(sealer.subkey("widget visitors"), sealer.subkey("something else"));
        assert_ne!(sealer.subkey("widget visitors"), secret_box(8).subkey("widget visitors"));
        assert_ne!(sealer.subkey("widget visitors"), [7u8; KEY_LEN]);
    }

    #[test]
    fn keys_parse_from_hex_or_base64() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(parse_key(&hex).map(|k| k[31]), Some(0xff));
        assert_eq!(parse_key(&STANDARD.encode([1u8; 32])).map(|k| k[0]), Some(1));
        assert!(parse_key("short").is_none());
        assert!(parse_key(&STANDARD.encode([1u8; 16])).is_none());
    }

    #[test]
    fn the_data_dir_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = data_dir_key(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(data_dir_key(dir.path()).unwrap_or_else(|e| panic!("{e}")), first);
    }
}

//! Ed25519 platform keys as PEM text and as files: parsing `TWIN_JWT_PRIVATE_KEY` and
//! `TWIN_JWT_PUBLIC_KEY` (PEM text, or the path of a PEM file), and the development key ring in
//! `<data_dir>/jwt-keys/` that `twin serve`, `twin token` and `twin keys rotate` share.
//!
//! The key ring is one private key, `signing.pem` (PKCS#8, mode 0600), which signs, and one
//! `<kid>.pub.pem` per public key that still verifies: the signing key's own, and those of keys it
//! replaced until their tokens have expired. Deleting a `.pub.pem` file retires that key.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The folder of the development key ring, inside the data dir.
pub const KEYS_DIR: &str = "jwt-keys";
const SIGNING_FILE: &str = "signing.pem";
const PUBLIC_SUFFIX: &str = ".pub.pem";
/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// An Ed25519 private key: its PKCS#8 document and its raw 32-byte public key.
pub struct PrivateKey {
    pub pkcs8: Vec<u8>,
    pub public: [u8; 32],
}

impl PrivateKey {
    pub fn generate() -> anyhow::Result<Self> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("cannot generate an Ed25519 key"))?;
        Self::from_pkcs8(document.as_ref())
    }

    pub fn from_pkcs8(der: &[u8]) -> anyhow::Result<Self> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| anyhow::anyhow!("the private key is not an Ed25519 PKCS#8 key"))?;
        let public: [u8; 32] =
            pair.public_key().as_ref().try_into().context("an Ed25519 public key is not 32 bytes long")?;
        Ok(Self { pkcs8: der.to_vec(), public })
    }

    /// The one `PRIVATE KEY` block of `text`.
    pub fn from_pem(text: &str) -> anyhow::Result<Self> {
        let blocks = pem_blocks(text)?;
        match blocks.as_slice() {
            [(label, der)] if label == "PRIVATE KEY" => Self::from_pkcs8(der),
            [(label, _)] => bail!("expected a PKCS#8 `PRIVATE KEY` PEM block, found `{label}`"),
            _ => bail!("expected exactly one PEM block in the private key, found {}", blocks.len()),
        }
    }

    pub fn to_pem(&self) -> String {
        to_pem("PRIVATE KEY", &self.pkcs8)
    }
}

/// The raw Ed25519 public keys of every `PUBLIC KEY` block in `text` (several may be concatenated).
pub fn public_keys_from_pem(text: &str) -> anyhow::Result<Vec<[u8; 32]>> {
    let mut keys = Vec::new();
    for (label, der) in pem_blocks(text)? {
        if label != "PUBLIC KEY" {
            bail!("expected `PUBLIC KEY` PEM blocks, found `{label}`");
        }
        keys.push(ed25519_from_spki(&der)?);
    }
    Ok(keys)
}

pub fn public_key_to_pem(public: &[u8; 32]) -> String {
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(public);
    to_pem("PUBLIC KEY", &der)
}

fn ed25519_from_spki(der: &[u8]) -> anyhow::Result<[u8; 32]> {
    match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) => key.try_into().context("an Ed25519 public key must be 32 bytes long"),
        None => bail!("only Ed25519 public keys are supported"),
    }
}

/// A setting that is PEM text, or else the path of a file holding it.
pub fn pem_text_or_file(value: &str, setting: &str) -> anyhow::Result<String> {
    if value.trim_start().starts_with("-----BEGIN ") {
        return Ok(value.to_owned());
    }
    std::fs::read_to_string(value.trim())
        .with_context(|| format!("{setting} is neither PEM text nor a readable PEM file ({:?})", value.trim()))
}

/// `(label, DER)` of each `-----BEGIN label-----` … `-----END label-----` block.
fn pem_blocks(text: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    while let Some(line) = lines.next() {
        let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) else {
            bail!("unexpected text outside a PEM block");
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        loop {
            match lines.next() {
                Some(l) if l == end => break,
                Some(l) => body.push_str(l),
                None => bail!("the PEM block `{label}` has no end line"),
            }
        }
        let der = STANDARD.decode(body).with_context(|| format!("the PEM block `{label}` is not valid base64"))?;
        blocks.push((label.to_owned(), der));
    }
    if blocks.is_empty() {
        bail!("no PEM block found");
    }
    Ok(blocks)
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(chunk));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

/// The development key ring of `data_dir`: its signing key and every public key it verifies with,
/// the signing key's first. Created with a fresh key when missing.
pub fn dev_ring(data_dir: &Path) -> anyhow::Result<(PrivateKey, Vec<[u8; 32]>)> {
    let dir = data_dir.join(KEYS_DIR);
    let signing_path = dir.join(SIGNING_FILE);
    let signing = match std::fs::read_to_string(&signing_path) {
        Ok(text) => PrivateKey::from_pem(&text).with_context(|| format!("{} is not valid", signing_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_ring(data_dir, &dir, &signing_path)?,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", signing_path.display())),
    };
    let mut public = vec![signing.public];
    for path in public_files(&dir)? {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        for key in public_keys_from_pem(&text).with_context(|| format!("{} is not valid", path.display()))? {
            if !public.contains(&key) {
                public.push(key);
            }
        }
    }
    Ok((signing, public))
}

/// A new signing key for the development ring; the previous public keys stay and keep verifying.
/// Returns the new key, whose public half is already in the ring.
pub fn rotate_dev_ring(data_dir: &Path, kid_of: impl Fn(&[u8; 32]) -> String) -> anyhow::Result<PrivateKey> {
    let (current, _) = dev_ring(data_dir)?;
    let dir = data_dir.join(KEYS_DIR);
    // The ring created on first use has the current key's public file; one made by hand may not.
    write_public(&dir, &current.public, &kid_of)?;
    let next = PrivateKey::generate()?;
    write_public(&dir, &next.public, &kid_of)?;
    let staged = dir.join(format!("{SIGNING_FILE}.{}.new", uuid::Uuid::new_v4().simple()));
    write_private(&staged, &next.to_pem()).with_context(|| format!("cannot write {}", staged.display()))?;
    std::fs::rename(&staged, dir.join(SIGNING_FILE)).context("cannot replace the signing key")?;
    Ok(next)
}

fn create_ring(data_dir: &Path, dir: &Path, signing_path: &Path) -> anyhow::Result<PrivateKey> {
    create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = PrivateKey::generate()?;
    let created = create_private_file(signing_path, &key.to_pem())
        .with_context(|| format!("cannot write {}", signing_path.display()))?;
    if !created {
        let text = std::fs::read_to_string(signing_path)?;
        return PrivateKey::from_pem(&text);
    }
    tracing::info!(path = %signing_path.display(), "generated a development Ed25519 token signing key");
    if data_dir.join("jwt-dev-secret").exists() {
        tracing::info!(
            "the HS256 development secret jwt-dev-secret is no longer used: tokens signed with it are refused"
        );
    }
    Ok(key)
}

/// Creates `path` with `text`, readable by the owner only, unless it exists (then `Ok(false)` and
/// the existing file stays). Written whole under a private name, then linked into place: a `twin`
/// process sharing the data dir never reads a half-written file, and the link fails if another
/// process created the file first.
pub(crate) fn create_private_file(path: &Path, text: &str) -> std::io::Result<bool> {
    let staged = path.with_file_name(format!(
        "{}.{}.new",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key"),
        uuid::Uuid::new_v4().simple()
    ));
    write_private(&staged, text)?;
    let linked = match std::fs::hard_link(&staged, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // A file system without hard links: moved into place instead.
        Err(_) => std::fs::rename(&staged, path).map(|()| true),
    };
    let _ = std::fs::remove_file(&staged);
    linked
}

fn write_public(dir: &Path, public: &[u8; 32], kid_of: &impl Fn(&[u8; 32]) -> String) -> anyhow::Result<()> {
    let path = dir.join(format!("{}{PUBLIC_SUFFIX}", kid_of(public)));
    std::fs::write(&path, public_key_to_pem(public)).with_context(|| format!("cannot write {}", path.display()))
}

/// The `*.pub.pem` files of the ring, sorted by name.
fn public_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(PUBLIC_SUFFIX)))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Creates `path` (which must not exist) readable by the owner only.
#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_pem_and_several_public_blocks_parse() {
        let a = PrivateKey::generate().unwrap();
        let b = PrivateKey::generate().unwrap();
        assert_eq!(PrivateKey::from_pem(&a.to_pem()).unwrap().public, a.public);
        let both = format!("{}{}", public_key_to_pem(&a.public), public_key_to_pem(&b.public));
        assert_eq!(public_keys_from_pem(&both).unwrap(), vec![a.public, b.public]);
        assert!(PrivateKey::from_pem(&public_key_to_pem(&a.public)).is_err());
        assert!(public_keys_from_pem("garbage").is_err());
    }

    #[test]
    fn processes_starting_together_share_one_dev_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<[u8; 32]> = std::thread::scope(|scope| {
            let starts: Vec<_> = (0..8).map(|_| scope.spawn(|| dev_ring(dir.path()).unwrap().0.public)).collect();
            starts.into_iter().map(|s| s.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]), "every start signs with the same key");
        let left: Vec<_> = std::fs::read_dir(dir.path().join(KEYS_DIR)).unwrap().filter_map(Result::ok).collect();
        assert_eq!(left.len(), 1, "no staged files are left behind");
    }

    #[test]
    fn the_dev_ring_is_private_stable_and_rotates_keeping_old_public_keys() {
        let dir = tempfile::tempdir().unwrap();
        let kid = |k: &[u8; 32]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let (first, public) = dev_ring(dir.path()).unwrap();
        assert_eq!(public, vec![first.public]);
        assert_eq!(dev_ring(dir.path()).unwrap().0.public, first.public, "read back, not regenerated");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEYS_DIR).join(SIGNING_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let next = rotate_dev_ring(dir.path(), kid).unwrap();
        let (signing, public) = dev_ring(dir.path()).unwrap();
        assert_eq!(signing.public, next.public);
        assert!(public.contains(&first.public) && public.contains(&next.public) && public.len() == 2);
    }
}

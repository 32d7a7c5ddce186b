//! Opaque refresh tokens: 32 random bytes, URL-safe; the store keeps only their sha-256.

use aws_lc_rs::digest::{SHA256, digest};
use rand::RngCore;

/// A new refresh token and its hash.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = hash(&token);
    (token, hash)
}

/// The lowercase hex sha-256 of a token, as stored.
pub fn hash(token: &str) -> String {
    digest(&SHA256, token.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

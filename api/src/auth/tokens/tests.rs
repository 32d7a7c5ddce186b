//! The attack suite of platform tokens, run against both kinds of ring.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

fn hs() -> TokenKeys {
    TokenKeys::from_secret(SECRET, "twin", "twin")
}

fn ed() -> TokenKeys {
    TokenKeys::from_ed25519(&PrivateKey::generate().unwrap(), &[], "twin", "twin").unwrap()
}

fn rings() -> [(&'static str, TokenKeys); 2] {
    [("HS256", hs()), ("EdDSA", ed())]
}

fn alice() -> CreatorId {
    twin_engine::Slug::parse("alice").unwrap().creator_id()
}

fn user() -> UserId {
    UserId::parse("u1").unwrap()
}

/// Good claims, as JSON, to be spoiled one at a time.
fn claims() -> Value {
    let now = now_secs();
    json!({"sub": "u1", "tenant": alice().as_uuid(), "role": "user", "iat": now, "exp": now + 600,
           "aud": "twin", "iss": "twin", "jti": "j"})
}

/// `claims` signed by the ring's signing key under `header`.
fn signed(keys: &TokenKeys, header: &Header, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, &keys.ring.signing).unwrap()
}

fn ring_header(keys: &TokenKeys) -> Header {
    let mut header = Header::new(keys.ring.alg);
    header.kid = Some(keys.signing_kid().to_owned());
    header
}

/// A token with any header JSON, the payload of `claims`, and a made-up signature.
fn raw(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()), b64(signature))
}

fn refused(keys: &TokenKeys, token: &str) -> bool {
    matches!(keys.verify(token), Err(AuthError::Invalid))
}

#[test]
fn a_minted_token_verifies_to_its_identity_on_both_rings() {
    for (name, keys) in rings() {
        let token = keys.mint(alice(), &user(), Role::Creator, Duration::from_secs(60)).unwrap();
        let expected = Identity { creator: alice(), subject: user(), role: Role::Creator };
        assert_eq!(keys.verify(&token).unwrap(), expected, "{name}");
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys.signing_kid()), "{name}");
    }
}

#[test]
fn alg_none_is_refused() {
    for (name, keys) in rings() {
        for alg in ["none", "None", "NONE"] {
            let header = json!({"alg": alg, "typ": "JWT", "kid": keys.signing_kid()});
            let token = format!("{}.{}.", b64(header.to_string().as_bytes()), b64(claims().to_string().as_bytes()));
            assert!(refused(&keys, &token), "{name} {alg}");
        }
    }
}

#[test]
fn an_hs256_token_signed_with_the_public_key_is_refused() {
    let keys = ed();
    let jwk = keys.jwks().keys.remove(0);
    let jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else { panic!("{jwk:?}") };
    let raw_public = unb64(&params.x);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(keys.signing_kid().to_owned());
    // The public key as raw bytes, as its base64url text and as the JWK's JSON: every form an
    // attacker could feed a verifier that trusts the header's algorithm.
    let forms = [raw_public.clone(), params.x.clone().into_bytes(), serde_json::to_vec(&jwk).unwrap()];
    for secret in forms {
        let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&secret)).unwrap();
        assert!(refused(&keys, &token));
    }
}

#[test]
fn a_foreign_algorithm_header_is_refused() {
    for (name, keys) in rings() {
        for alg in ["RS256", "ES256", "PS256", "HS512", "EdDSA", "HS256"] {
            if alg == format!("{:?}", keys.ring.alg) {
                continue;
            }
            let header = json!({"alg": alg, "typ": "JWT", "kid": keys.signing_kid()});
            // The real signature of the real payload under the ring's own header, moved over.
            let genuine = signed(&keys, &ring_header(&keys), &claims());
            let signature = unb64(genuine.rsplit('.').next().unwrap());
            assert!(refused(&keys, &raw(&header, &claims(), &signature)), "{name} {alg}");
        }
    }
    // An EdDSA token from another key, to an HS256 ring (and the other way round).
    let other = ed();
    let token = other.mint(alice(), &user(), Role::User, Duration::from_secs(60)).unwrap();
    assert!(refused(&hs(), &token));
    assert!(refused(&ed(), &hs().mint(alice(), &user(), Role::User, Duration::from_secs(60)).unwrap()));
}

#[test]
fn wrong_audience_or_issuer_is_refused() {
    for (name, keys) in rings() {
        for (claim, value) in [("aud", "other"), ("iss", "other")] {
            let mut spoiled = claims();
            spoiled[claim] = json!(value);
            assert!(refused(&keys, &signed(&keys, &ring_header(&keys), &spoiled)), "{name} {claim}");
        }
        for claim in ["aud", "iss", "exp", "sub", "iat", "tenant"] {
            let mut missing = claims();
            missing.as_object_mut().unwrap().remove(claim);
            assert!(refused(&keys, &signed(&keys, &ring_header(&keys), &missing)), "{name} without {claim}");
        }
    }
}

#[test]
fn expired_future_nbf_and_future_iat_are_refused() {
    let now = now_secs();
    for (name, keys) in rings() {
        let mut expired = claims();
        expired["iat"] = json!(now - 7200);
        expired["exp"] = json!(now - 3600);
        assert!(
            matches!(keys.verify(&signed(&keys, &ring_header(&keys), &expired)), Err(AuthError::Expired)),
            "{name}"
        );

        let mut early = claims();
        early["nbf"] = json!(now + 3600);
        assert!(refused(&keys, &signed(&keys, &ring_header(&keys), &early)), "{name} nbf");

        let mut future = claims();
        future["iat"] = json!(now + 3600);
        assert!(refused(&keys, &signed(&keys, &ring_header(&keys), &future)), "{name} iat");

        // Within the leeway, clocks may disagree.
        let mut skewed = claims();
        skewed["iat"] = json!(now + 5);
        skewed["nbf"] = json!(now + 5);
        assert!(keys.verify(&signed(&keys, &ring_header(&keys), &skewed)).is_ok(), "{name} skew");
    }
}

#[test]
fn unknown_kid_is_refused_and_a_missing_kid_only_on_hs256() {
    for (name, keys) in rings() {
        let mut header = ring_header(&keys);
        header.kid = Some("not-a-key".to_owned());
        assert!(refused(&keys, &signed(&keys, &header, &claims())), "{name}");
    }
    let keys = ed();
    assert!(refused(&keys, &signed(&keys, &Header::new(Algorithm::EdDSA), &claims())), "EdDSA needs a kid");
    // HS256 has one secret; tokens from before key ids verify.
    let keys = hs();
    assert!(keys.verify(&signed(&keys, &Header::new(Algorithm::HS256), &claims())).is_ok());
}

#[test]
fn tampered_tokens_are_refused() {
    for (name, keys) in rings() {
        let token = keys.mint(alice(), &user(), Role::User, Duration::from_secs(60)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: Value = serde_json::from_slice(&unb64(parts[1])).unwrap();
        payload["tenant"] = json!(Uuid::nil());
        let other_tenant = format!("{}.{}.{}", parts[0], b64(payload.to_string().as_bytes()), parts[2]);
        assert!(refused(&keys, &other_tenant), "{name} tenant");
        payload = serde_json::from_slice(&unb64(parts[1])).unwrap();
        payload["role"] = json!("admin");
        let promoted = format!("{}.{}.{}", parts[0], b64(payload.to_string().as_bytes()), parts[2]);
        assert!(refused(&keys, &promoted), "{name} role");
        let mut signature = unb64(parts[2]);
        signature[0] ^= 1;
        assert!(refused(&keys, &format!("{}.{}.{}", parts[0], parts[1], b64(&signature))), "{name} signature");
        assert!(refused(&keys, &format!("{}.{}", parts[0], parts[1])), "{name} no signature");
        assert!(refused(&keys, "garbage"), "{name} garbage");
    }
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    for (name, keys) in rings() {
        let mut big = claims();
        big["pad"] = json!("x".repeat(MAX_TOKEN_BYTES));
        let token = signed(&keys, &ring_header(&keys), &big);
        assert!(token.len() > MAX_TOKEN_BYTES);
        assert!(refused(&keys, &token), "{name}");
        let mut fits = claims();
        fits["pad"] = json!("x".repeat(MAX_TOKEN_BYTES / 2));
        assert!(keys.verify(&signed(&keys, &ring_header(&keys), &fits)).is_ok(), "{name} a large but fine token");
    }
}

#[test]
fn a_rotated_out_key_verifies_until_it_is_removed() {
    let old = PrivateKey::generate().unwrap();
    let new = PrivateKey::generate().unwrap();
    let before = TokenKeys::from_ed25519(&old, &[], "twin", "twin").unwrap();
    let old_token = before.mint(alice(), &user(), Role::User, Duration::from_secs(600)).unwrap();

    let rotated = TokenKeys::from_ed25519(&new, &[old.public], "twin", "twin").unwrap();
    assert_ne!(rotated.signing_kid(), before.signing_kid());
    assert_eq!(rotated.kids(), vec![rotated.signing_kid(), before.signing_kid()]);
    assert!(rotated.verify(&old_token).is_ok(), "the previous key still verifies");
    let new_token = rotated.mint(alice(), &user(), Role::User, Duration::from_secs(600)).unwrap();
    assert!(rotated.verify(&new_token).is_ok());
    assert!(refused(&before, &new_token), "the old ring does not know the new key");

    let retired = TokenKeys::from_ed25519(&new, &[], "twin", "twin").unwrap();
    assert!(refused(&retired, &old_token), "a removed key's tokens are refused");
    assert!(retired.verify(&new_token).is_ok());
}

#[test]
fn the_jwks_holds_public_keys_only_named_by_their_thumbprints() {
    let old = PrivateKey::generate().unwrap();
    let keys = TokenKeys::from_ed25519(&PrivateKey::generate().unwrap(), &[old.public], "twin", "twin").unwrap();
    let set = serde_json::to_value(keys.jwks()).unwrap();
    let listed = set["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    for key in listed {
        assert_eq!(
            (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
            (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
        );
        assert_eq!(key["use"], "sig");
        assert!(key.get("d").is_none(), "no private part: {key}");
        assert_eq!(unb64(key["x"].as_str().unwrap()).len(), 32);
    }
    assert_eq!(listed[0]["kid"], keys.signing_kid());
    assert_eq!(listed[1]["kid"], ed25519_kid(&old.public).unwrap());
    assert!(hs().jwks().keys.is_empty(), "an HS256 secret is never published");
}

#[test]
fn the_kid_is_the_rfc_7638_thumbprint() {
    // RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
    let x: [u8; 32] = unb64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").try_into().unwrap();
    assert_eq!(ed25519_kid(&x).unwrap(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
}

#[test]
fn settings_choose_the_ring_and_refuse_mixtures() {
    let dir = tempfile::tempdir().unwrap();
    let base = || {
        let overrides = crate::settings::Overrides { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
        Settings::defaults(&overrides).unwrap()
    };
    // Nothing configured: the development ring, the same on every start.
    let dev = TokenKeys::from_settings(&base()).unwrap();
    assert_eq!(TokenKeys::from_settings(&base()).unwrap().signing_kid(), dev.signing_kid());
    assert!(dir.path().join("jwt-keys").join("signing.pem").exists());

    // A configured key as PEM text, and another public key as a file path.
    let signing = PrivateKey::generate().unwrap();
    let previous = PrivateKey::generate().unwrap();
    let public_file = dir.path().join("previous.pub.pem");
    std::fs::write(&public_file, keyfiles::public_key_to_pem(&previous.public)).unwrap();
    let mut configured = base();
    configured.jwt.private_key = Some(crate::settings::Secret::new(signing.to_pem()));
    configured.jwt.public_key = Some(public_file.display().to_string());
    let keys = TokenKeys::from_settings(&configured).unwrap();
    assert_eq!(keys.kids(), vec![ed25519_kid(&signing.public).unwrap(), ed25519_kid(&previous.public).unwrap()]);

    let mut both = configured.clone();
    both.jwt.secret = Some(crate::settings::Secret::new("x".repeat(32)));
    assert!(TokenKeys::from_settings(&both).is_err(), "a secret and a private key together");
    let mut short = base();
    short.jwt.secret = Some(crate::settings::Secret::new("short"));
    assert!(TokenKeys::from_settings(&short).is_err(), "a short secret");
    let mut public_only = base();
    public_only.jwt.public_key = Some(keyfiles::public_key_to_pem(&previous.public));
    assert!(TokenKeys::from_settings(&public_only).is_err(), "public keys without a private key");
}

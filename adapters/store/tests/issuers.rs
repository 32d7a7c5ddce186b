//! Finding the creator a foreign end-user token names by its `iss` (`creator_by_token_issuer`),
//! the same tests against SQLite and PostgreSQL (where it runs as `twin_system`).

#![allow(clippy::unwrap_used)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use twin_engine::channel::SecretRef;
use twin_engine::ports::{CreatorStore, StoreError};
use twin_engine::twin::{CreatorProfile, UserTokens};
use twin_store::testing::{Kind, TestDb};

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Postgres).await } )*
        }
    };
}

contract!(a_token_issuer_finds_its_creator_and_profile, the_issuer_index_exists);

fn issuing(slug: &str, issuer: &str) -> CreatorProfile {
    let mut profile = profile(slug, slug);
    profile.user_tokens = Some(UserTokens {
        issuer: issuer.to_owned(),
        audience: Some("twin".to_owned()),
        secret: Some(SecretRef::new("env:SECRET")),
        jwks_url: None,
    });
    profile
}

async fn a_token_issuer_finds_its_creator_and_profile(kind: Kind) {
    let db = TestDb::new(kind).await;
    db.store.put_creator(&issuing("alice", "https://a.example"), &[], &[]).await.unwrap();
    db.store.put_creator(&issuing("bob", "https://b.example"), &[], &[]).await.unwrap();
    db.store.put_creator(&profile("carol", "Carol"), &[], &[]).await.unwrap();

    let (id, found) = db.store.creator_by_token_issuer("https://a.example").await.unwrap().unwrap();
    assert_eq!((id, found), (creator("alice"), issuing("alice", "https://a.example")));
    assert_eq!(db.store.creator_by_token_issuer("https://b.example").await.unwrap().unwrap().0, creator("bob"));
    assert!(db.store.creator_by_token_issuer("https://c.example").await.unwrap().is_none());
    assert!(db.store.creator_by_token_issuer("").await.unwrap().is_none());

    // Bob's platform moves: the old issuer no longer names him.
    db.store.put_creator(&issuing("bob", "https://new-b.example"), &[], &[]).await.unwrap();
    assert!(db.store.creator_by_token_issuer("https://b.example").await.unwrap().is_none());
    assert_eq!(db.store.creator_by_token_issuer("https://new-b.example").await.unwrap().unwrap().0, creator("bob"));

    // Two creators with one issuer: refused rather than credited to either.
    db.store.put_creator(&issuing("dave", "https://a.example"), &[], &[]).await.unwrap();
    let ambiguous = db.store.creator_by_token_issuer("https://a.example").await;
    assert!(matches!(ambiguous, Err(StoreError::Corrupt(_))), "{ambiguous:?}");
}

async fn the_issuer_index_exists(kind: Kind) {
    let db = TestDb::new(kind).await;
    let count: i64 = match kind {
        Kind::Postgres => {
            let mut conn = db.superuser().await;
            sqlx::query_scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'creators_token_issuer'")
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
        Kind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            let count = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'creators_token_issuer'")
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            count
        }
    };
    assert_eq!(count, 1);
}

//! "Test my twin": a creator's (or agent's) own preview conversation, as a fictional end user
//! `preview:<account>`. It runs through the real engine (programs, knowledge, nudges), is marked
//! in every view, and is left out of the counts.

use twin_engine::UserId;

/// The prefix of preview users' ids; no channel or token issuer names users so.
pub const PREFIX: &str = "preview:";

/// The preview user of the account (or token subject) `subject`.
pub fn user_of(subject: &UserId) -> Result<UserId, twin_engine::ids::IdError> {
    UserId::parse(&format!("{PREFIX}{subject}"))
}

pub fn is_preview(user: &UserId) -> bool {
    user.as_str().starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_user_is_recognised_and_others_are_not() {
        let subject = UserId::parse("2b8f0b8e-0000-4000-8000-000000000001").unwrap_or_else(|e| panic!("{e}"));
        let preview = user_of(&subject).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(preview.as_str(), "preview:2b8f0b8e-0000-4000-8000-000000000001");
        assert!(is_preview(&preview));
        assert!(!is_preview(&subject));
        assert!(!is_preview(&UserId::parse("telegram:preview:1").unwrap_or_else(|e| panic!("{e}"))));
    }
}

//! Metric names of the actor tree, in one place (`twin_<area>_<what>_<unit>`).

pub const CONVERSATIONS_ACTIVE: &str = "twin_conversations_active";
pub const CONVERSATION_SPAWNS: &str = "twin_conversation_spawns_total";
pub const CONVERSATION_PASSIVATIONS: &str = "twin_conversation_passivations_total";
pub const CONVERSATION_RESTARTS: &str = "twin_conversation_restarts_total";
pub const CONVERSATION_POISON_EVENTS: &str = "twin_conversation_poison_events_total";
pub const WRITER_BATCH_RECORDS: &str = "twin_writer_batch_records";
pub const WRITER_COMMIT_SECONDS: &str = "twin_writer_commit_seconds";
pub const WRITER_COMMIT_FAILURES: &str = "twin_writer_commit_failures_total";
pub const WRITER_OVERLOADED: &str = "twin_writer_overloaded_total";
pub const REPLY_SECONDS: &str = "twin_reply_seconds";
pub const REPLY_FAILURES: &str = "twin_reply_failures_total";
pub const NUDGES_LOADED: &str = "twin_nudges_loaded";
pub const NUDGES_CLAIMED: &str = "twin_nudges_claimed_total";
pub const NUDGE_CLAIM_LATENESS_SECONDS: &str = "twin_nudge_claim_lateness_seconds";
pub const KNOWLEDGE_CHUNKS_EMBEDDED: &str = "twin_knowledge_chunks_embedded_total";
pub const RETRIEVAL_SECONDS: &str = "twin_retrieval_seconds";
pub const REPLY_CONSISTENCY: &str = "twin_reply_consistency";
pub const CLUSTER_FORWARDS: &str = "twin_cluster_forwards_total";
pub const CLUSTER_HANDOVERS: &str = "twin_cluster_handovers_total";
pub const CLUSTER_FENCED: &str = "twin_cluster_fenced_commits_total";

/// Describes every metric once, so `/metrics` carries help text.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CONVERSATIONS_ACTIVE, "Conversation actors in memory.");
    describe_counter!(CONVERSATION_SPAWNS, "Conversation actors spawned (first use or re-hydration).");
    describe_counter!(CONVERSATION_PASSIVATIONS, "Conversation actors stopped after being idle.");
    describe_counter!(CONVERSATION_RESTARTS, "Conversation actors restarted after a crash.");
    describe_counter!(
        CONVERSATION_POISON_EVENTS,
        "Events that made a conversation's step panic; recorded and skipped."
    );
    describe_histogram!(WRITER_BATCH_RECORDS, "Records written per group commit.");
    describe_histogram!(WRITER_COMMIT_SECONDS, "Duration of one group commit.");
    describe_counter!(WRITER_COMMIT_FAILURES, "Group commits that failed.");
    describe_counter!(WRITER_OVERLOADED, "Commits refused because the writer queue was full.");
    describe_histogram!(REPLY_SECONDS, "Time from starting a reply to its last delta.");
    describe_counter!(REPLY_FAILURES, "Replies that failed or timed out.");
    describe_gauge!(NUDGES_LOADED, "Nudges held in the scheduler's timing wheel.");
    describe_counter!(NUDGES_CLAIMED, "Due nudges claimed and routed to their conversation.");
    describe_histogram!(NUDGE_CLAIM_LATENESS_SECONDS, "Time from a nudge's due time to its claim.");
    describe_counter!(KNOWLEDGE_CHUNKS_EMBEDDED, "Knowledge chunks embedded into the vector index.");
    describe_histogram!(RETRIEVAL_SECONDS, "Retrieval for one reply: query embedding, vector search, fusion.");
    describe_histogram!(REPLY_CONSISTENCY, "Consistency of twin replies with the creator's persona (0 to 1).");
    describe_counter!(CLUSTER_FORWARDS, "Events routed to the conversation's owner on another node.");
    describe_counter!(CLUSTER_HANDOVERS, "Conversations handed over to another node after the live set changed.");
    describe_counter!(CLUSTER_FENCED, "Commits refused because another node owns the conversation now.");
}

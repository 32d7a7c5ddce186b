//! Twin's state shared between nodes over Redis (`fred`): today the rate limits, so every node of a
//! cluster counts against the same budget, and single-use values (the web widget's chat tickets),
//! so a ticket issued on one node is redeemed on any; and the live fan-out, so a creator watching
//! through one node sees the conversations every node runs (`live`). Membership and routing come
//! with the rest of the scale-out work (ARCHITECTURE §9).
//!
//! Every Redis key starts with `twin:` and, when it belongs to a tenant, carries the tenant
//! (`twin:{creator}:…`), so one tenant's keys can be listed and erased on their own.

pub mod limits;
pub mod live;
pub mod membership;
pub mod node;
mod redis;
pub mod single_use;

pub use limits::{Decision, Limiter, LocalLimiter, Rate, RateError, RedisLimiter};
pub use live::{LiveConfig, LiveError, LiveStats, RedisLive};
pub use membership::{Membership, MembershipConfig, View};
pub use node::{Inbound, RedisCluster};
pub use single_use::{LocalSingleUse, RedisSingleUse, SingleUseError, SingleUseStore};

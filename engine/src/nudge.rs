//! Proactive nudges: when one may go out (the policy), the user's wall clock it is judged by, and
//! the timing wheel the nudge scheduler actor keeps every loaded nudge in.
//!
//! The conversation's step asks [`decide`] when a nudge falls due; the scheduler actor owns one
//! [`TimingWheel`]. Everything here is pure: time comes in as a [`Timestamp`](crate::time::Timestamp).

mod duration;
mod local_time;
mod opt_out;
mod policy;
mod wheel;

pub use duration::{DurationError, DurationSpec};
pub use local_time::{
    LocalTime, LocalTimeError, TimeZone, UnknownTimeZone, local_date, local_datetime, next_local_time,
    start_of_next_local_day,
};
pub use opt_out::{OptCommand, opt_command};
pub use policy::{
    Audience, ChannelWindow, Decision, DeferReason, NudgePolicy, QuietHours, QuietHoursError, SkipReason, decide,
    record_sent, sent_today,
};
pub use wheel::TimingWheel;

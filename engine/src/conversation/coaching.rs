//! The coaching side of a conversation: enrolment triggers, carrying out the program cursor's
//! outputs, nudges falling due under the policy, and opting out of them.
//!
//! Stated rules:
//! - Inactivity nudges are armed when the user is expected to write (a program waits for an answer
//!   or is in a chat step; or the creator has an inactivity nudge for free chat) and none is
//!   pending. A user message does not rewrite the row: when the nudge falls due and the user wrote
//!   since, it is re-armed for `last user message + inactivity_after` instead of sent. One
//!   inactivity nudge per silence: the next one is armed only after the user writes again.
//! - Program timers (`wait`, a task check-in, a handoff timeout) are never stale: after downtime
//!   they fire once, late. Inactivity nudges overdue by more than the policy's `stale_after` are
//!   dropped (settled as skipped, with a live event).
//! - A program timer that falls due while the user opted out or is unreachable is held; the program
//!   resumes from it the next time the user writes.

use crate::channel::OutboxBody;
use crate::ids::{NudgeId, ProgramId};
use crate::message::{Choice, Origin};
use crate::nudge::{self, Audience, Decision, OptCommand, TimeZone};
use crate::ports::{LiveEventKind, NudgeOutcome, Outbound, Recipient, Record, ScheduledNudge};
use crate::program::{Context, Enrolment, Output, Phase, Program};
use crate::time::Timestamp;
use crate::twin::TwinSnapshot;

use super::batch::Batch;

#[cfg(test)]
mod tests;
use super::{Conversation, NudgeKind, PendingNudge};

const OPTED_OUT_TEXT: &str = "Got it: no more reminders from me. Send START any time to turn them back on.";
const OPTED_IN_TEXT: &str = "Reminders are back on.";

impl Conversation {
    /// Decides what a stored user message leads to: an opt-out, a program step, or a twin reply.
    pub(super) fn coach_user_text(
        &mut self,
        twin: &TwinSnapshot,
        text: &str,
        first_contact: bool,
        now: Timestamp,
        batch: &mut Batch,
    ) {
        self.last_user_at = Some(now);
        let audience = &mut self.header.state.audience;
        if audience.unreachable {
            audience.unreachable = false;
            batch.state_changed = true;
        }
        self.header.state.nudged_since_user = false;
        // STOP and START are commands, not conversation: neither reaches the program or the twin.
        if let Some(command) = nudge::opt_command(text) {
            let opted_out = command == OptCommand::Out;
            self.header.state.audience.opted_out = opted_out;
            batch.state_changed = true;
            batch.publish(LiveEventKind::NudgesOptedOut { opted_out });
            if opted_out {
                self.cancel_nudges(batch, |kind| matches!(kind, NudgeKind::Inactivity));
            }
            let text = if opted_out { OPTED_OUT_TEXT } else { OPTED_IN_TEXT };
            self.say(twin, batch, text.to_owned(), Vec::new(), Origin::Program, now);
            if !opted_out {
                self.resume_held(twin, now, batch);
                self.arm_inactivity(twin, now, batch);
            }
            return;
        }

        // A program timer held while nudges were not allowed goes first. If it leads to a step
        // that asks something, this message was written before the question and is not its
        // answer: the user answers what they now see. In a chat step it is a chat turn.
        if self.resume_held(twin, now, batch) {
            let asks = self
                .header
                .state
                .enrolment
                .as_ref()
                .is_some_and(|e| matches!(e.phase, Phase::Answer | Phase::CheckIn | Phase::Handoff));
            if asks {
                self.arm_inactivity(twin, now, batch);
                return;
            }
        }

        if let Some(enrolment) = self.header.state.enrolment.clone() {
            let Some(program) = twin.programs.version(&enrolment.program, enrolment.version) else {
                // The pinned version is gone or no longer compiles: free chat rather than silence.
                self.request_reply(twin, None, batch);
                return;
            };
            let mut cursor = enrolment;
            let timezone = self.timezone(twin);
            let ctx = Context { program, user: &self.header.user, timezone: &timezone, now };
            let outputs = cursor.on_user_text(&ctx, text);
            self.carry_out(twin, program, cursor, outputs, now, batch);
        } else if let Some(program) = self.trigger(twin, text, first_contact) {
            self.enrol(twin, program, now, batch);
        } else {
            self.request_reply(twin, None, batch);
        }
        self.arm_inactivity(twin, now, batch);
    }

    /// Runs a held program timer if it still belongs to the current step; true when it ran.
    pub(super) fn resume_held(&mut self, twin: &TwinSnapshot, now: Timestamp, batch: &mut Batch) -> bool {
        if self.header.state.control.held_by.is_some() {
            // A human holds the conversation: the timer waits for the release.
            return false;
        }
        let Some(held) = self.header.state.held.take() else { return false };
        batch.state_changed = true;
        let current = self
            .header
            .state
            .enrolment
            .as_ref()
            .is_some_and(|e| held == NudgeKind::Step { step: e.step.clone(), entry: e.entry });
        if current {
            self.run_timer(twin, now, batch);
        }
        current
    }

    fn trigger<'t>(&self, twin: &'t TwinSnapshot, text: &str, first_contact: bool) -> Option<&'t Program> {
        let programs = &twin.programs;
        programs.for_command(text).or_else(|| programs.for_keyword(text)).or_else(|| {
            let finished = |p: &Program| self.header.state.finished.iter().any(|(id, _)| *id == p.id);
            let default = twin.profile.default_program.as_ref().and_then(|id| programs.latest(id));
            (first_contact && !self.header.state.ever_enrolled)
                .then(|| default.or_else(|| programs.for_first_contact()))
                .flatten()
                .filter(|p| !finished(p))
        })
    }

    fn request_reply(&mut self, twin: &TwinSnapshot, goal: Option<String>, batch: &mut Batch) {
        batch.reply_requested = true;
        batch.then.extend(self.start_reply(twin, goal));
    }

    /// Starts a program (leaving the current one, if any) and runs it to its first waiting step.
    pub(super) fn enrol(&mut self, twin: &TwinSnapshot, program: &Program, now: Timestamp, batch: &mut Batch) {
        if let Some(previous) = self.header.state.enrolment.take() {
            batch.publish(LiveEventKind::StepLeft { program: previous.program, step: previous.step });
            self.cancel_nudges(batch, |kind| matches!(kind, NudgeKind::Step { .. }));
        }
        let timezone = self.timezone(twin);
        let ctx = Context { program, user: &self.header.user, timezone: &timezone, now };
        let (cursor, outputs) = Enrolment::start(&ctx);
        self.header.state.ever_enrolled = true;
        self.header.state.held = None;
        batch.state_changed = true;
        batch.publish(LiveEventKind::Enrolled { program: program.id.clone(), version: program.version });
        self.carry_out(twin, program, cursor, outputs, now, batch);
    }

    /// Explicit enrolment (the API); a user already in that program stays where they are.
    pub(super) fn on_enrol(&mut self, twin: &TwinSnapshot, program: ProgramId, now: Timestamp) -> Batch {
        let mut batch = Batch::default();
        let already = self.header.state.enrolment.as_ref().is_some_and(|e| e.program == program);
        if let (false, Some(program)) = (already, twin.programs.latest(&program)) {
            self.enrol(twin, program, now, &mut batch);
            self.arm_inactivity(twin, now, &mut batch);
        }
        batch
    }

    pub(super) fn program_after_reply(&mut self, twin: &TwinSnapshot, now: Timestamp, batch: &mut Batch) {
        let Some(cursor) = self.header.state.enrolment.clone() else { return };
        let Some(program) = twin.programs.version(&cursor.program, cursor.version) else { return };
        let mut cursor = cursor;
        let timezone = self.timezone(twin);
        let ctx = Context { program, user: &self.header.user, timezone: &timezone, now };
        let outputs = cursor.on_reply_finished(&ctx);
        self.carry_out(twin, program, cursor, outputs, now, batch);
    }

    /// Applies the cursor's outputs in order and keeps the moved cursor.
    pub(super) fn carry_out(
        &mut self,
        twin: &TwinSnapshot,
        program: &Program,
        cursor: Enrolment,
        outputs: Vec<Output>,
        now: Timestamp,
        batch: &mut Batch,
    ) {
        if self.header.state.enrolment.as_ref() != Some(&cursor) {
            batch.state_changed = true;
        }
        let entry = cursor.entry;
        let step = cursor.step.clone();
        self.header.state.enrolment = Some(cursor);
        let id = &program.id;
        for output in outputs {
            match output {
                Output::Say { text, choices, origin } => {
                    if origin == Origin::Nudge {
                        self.count_sent(twin, now);
                    }
                    self.say(twin, batch, text, choices, origin, now);
                }
                Output::Timer { due } => {
                    self.schedule(batch, NudgeKind::Step { step: step.clone(), entry }, due);
                }
                Output::CancelTimers => self.cancel_nudges(batch, |kind| matches!(kind, NudgeKind::Step { .. })),
                Output::Reply { goal } => self.request_reply(twin, goal, batch),
                Output::Entered { step, kind } => {
                    // Durable for the funnel, in this commit with the state that holds the step.
                    let (creator, conversation) = (self.header.creator, self.header.id);
                    let (program, at) = (id.clone(), now);
                    batch.persist(Record::StepEntered { creator, conversation, program, step: step.clone(), at });
                    batch.publish(LiveEventKind::StepEntered { program: id.clone(), step, kind })
                }
                Output::Left { step } => batch.publish(LiveEventKind::StepLeft { program: id.clone(), step }),
                Output::AnswerInvalid { step, attempts, gave_up } => {
                    batch.publish(LiveEventKind::AnswerInvalid { step, attempts, gave_up })
                }
                Output::ConditionFailed { step, error } => {
                    batch.publish(LiveEventKind::ConditionFailed { step, error })
                }
                Output::HandoffRequested { step } => batch.publish(LiveEventKind::HandoffRequested { step }),
                Output::Timezone(name) => {
                    self.header.state.audience.timezone = Some(name);
                    batch.state_changed = true;
                }
                Output::Finished => {
                    if let Some(done) = self.header.state.enrolment.take() {
                        let finished = &mut self.header.state.finished;
                        // One entry per program and version, however often it is repeated.
                        if !finished.iter().any(|(p, v)| *p == done.program && *v == done.version) {
                            finished.push((done.program, done.version));
                        }
                    }
                    self.header.state.held = None;
                    batch.state_changed = true;
                    batch.publish(LiveEventKind::ProgramFinished { program: id.clone() });
                }
            }
        }
    }

    /// A nudge fell due (the scheduler claimed its row).
    pub(super) fn on_nudge_due(&mut self, twin: &TwinSnapshot, id: NudgeId, now: Timestamp) -> Batch {
        let mut batch = Batch::default();
        let Some(position) = self.header.state.nudges.iter().position(|n| n.id == id) else {
            // Already settled (or never ours): settling again is a no-op on the row and ends the claim.
            let creator = self.header.creator;
            batch.persist(Record::NudgeSettled { creator, id, outcome: NudgeOutcome::Cancelled });
            return batch;
        };
        let nudge = self.header.state.nudges.remove(position);
        batch.state_changed = true;
        if self.nudge_while_held(&nudge, &mut batch) {
            return batch;
        }
        match &nudge.kind {
            NudgeKind::Step { step, entry } => self.step_timer_due(twin, &nudge, step, *entry, now, &mut batch),
            NudgeKind::Inactivity => self.inactivity_due(twin, &nudge, now, &mut batch),
        }
        batch
    }

    pub(super) fn on_nudge_abandoned(&mut self, id: NudgeId) -> Batch {
        let mut batch = Batch::default();
        self.settle(&mut batch, id, NudgeOutcome::Skipped);
        if let Some(position) = self.header.state.nudges.iter().position(|n| n.id == id) {
            let nudge = self.header.state.nudges.remove(position);
            if matches!(nudge.kind, NudgeKind::Step { .. }) {
                self.header.state.held = Some(nudge.kind);
            }
            batch.state_changed = true;
            batch.publish(LiveEventKind::NudgeSkipped { id, reason: "failed" });
        }
        batch
    }

    fn step_timer_due(
        &mut self,
        twin: &TwinSnapshot,
        nudge: &PendingNudge,
        step: &crate::ids::StepId,
        entry: u64,
        now: Timestamp,
        batch: &mut Batch,
    ) {
        let current = self.header.state.enrolment.as_ref().is_some_and(|e| e.step == *step && e.entry == entry);
        if !current {
            self.settle(batch, nudge.id, NudgeOutcome::Cancelled);
            return;
        }
        // Program timers are never stale: the program must go on, late rather than never.
        match self.decide(twin, nudge.due_at, now, false) {
            Decision::Send => {
                self.settle(batch, nudge.id, NudgeOutcome::Fired);
                batch.publish(LiveEventKind::NudgeFired { id: nudge.id });
                self.run_timer(twin, now, batch);
            }
            Decision::Defer { until, reason } => self.defer(batch, nudge, until, reason.as_str()),
            Decision::Skip { reason: nudge::SkipReason::WindowClosed } if self.template_nudge(twin, now, batch) => {
                // The template asks the user back; the program resumes from the timer when they answer.
                self.settle(batch, nudge.id, NudgeOutcome::Fired);
                batch.publish(LiveEventKind::NudgeFired { id: nudge.id });
                self.header.state.held = Some(nudge.kind.clone());
            }
            Decision::Skip { reason } => {
                self.settle(batch, nudge.id, NudgeOutcome::Skipped);
                batch.publish(LiveEventKind::NudgeSkipped { id: nudge.id, reason: reason.as_str() });
                self.header.state.held = Some(nudge.kind.clone());
            }
        }
    }

    fn run_timer(&mut self, twin: &TwinSnapshot, now: Timestamp, batch: &mut Batch) {
        let Some(mut cursor) = self.header.state.enrolment.clone() else { return };
        let Some(program) = twin.programs.version(&cursor.program, cursor.version) else { return };
        let timezone = self.timezone(twin);
        let ctx = Context { program, user: &self.header.user, timezone: &timezone, now };
        let outputs = cursor.on_timer(&ctx);
        self.carry_out(twin, program, cursor, outputs, now, batch);
        self.arm_inactivity(twin, now, batch);
    }

    fn inactivity_due(&mut self, twin: &TwinSnapshot, nudge: &PendingNudge, now: Timestamp, batch: &mut Batch) {
        let Some((after, text)) = self.inactivity(twin, now) else {
            self.settle(batch, nudge.id, NudgeOutcome::Cancelled);
            return;
        };
        if let Some(last) = self.last_user_at
            && last.plus_millis(after) > now
        {
            // The user wrote since this was armed: re-arm from their last message.
            self.settle(batch, nudge.id, NudgeOutcome::Cancelled);
            self.schedule(batch, NudgeKind::Inactivity, last.plus_millis(after));
            return;
        }
        match self.decide(twin, nudge.due_at, now, true) {
            Decision::Send => {
                self.settle(batch, nudge.id, NudgeOutcome::Fired);
                batch.publish(LiveEventKind::NudgeFired { id: nudge.id });
                self.count_sent(twin, now);
                self.header.state.nudged_since_user = true;
                self.say(twin, batch, text, Vec::new(), Origin::Nudge, now);
            }
            Decision::Defer { until, reason } => self.defer(batch, nudge, until, reason.as_str()),
            Decision::Skip { reason: nudge::SkipReason::WindowClosed } if self.template_nudge(twin, now, batch) => {
                self.settle(batch, nudge.id, NudgeOutcome::Fired);
                batch.publish(LiveEventKind::NudgeFired { id: nudge.id });
                self.count_sent(twin, now);
                self.header.state.nudged_since_user = true;
            }
            Decision::Skip { reason } => {
                self.settle(batch, nudge.id, NudgeOutcome::Skipped);
                batch.publish(LiveEventKind::NudgeSkipped { id: nudge.id, reason: reason.as_str() });
            }
        }
    }

    /// Outside WhatsApp's customer-service window only an approved template may go out: sends the
    /// creator's `nudge_template` (stored as a nudge message naming it). False when the creator
    /// configured none; the nudge is then skipped as `window_closed`.
    fn template_nudge(&mut self, twin: &TwinSnapshot, now: Timestamp, batch: &mut Batch) -> bool {
        let Some(template) = twin.profile.channels.whatsapp.as_ref().and_then(|w| w.nudge_template.as_ref()) else {
            return false;
        };
        let text = format!("[WhatsApp template \"{}\"]", template.name);
        self.say(twin, batch, text, Vec::new(), Origin::Nudge, now);
        let body = OutboxBody::Template { name: template.name.clone(), language: template.language.clone() };
        batch.bodies.push((self.last_seq, body));
        true
    }

    /// The inactivity delay and text that apply now: the program's while one waits for the user,
    /// else the creator's for free chat.
    fn inactivity(&self, twin: &TwinSnapshot, now: Timestamp) -> Option<(i64, String)> {
        match &self.header.state.enrolment {
            Some(cursor) => {
                if !matches!(cursor.phase, Phase::Answer | Phase::Chat | Phase::CheckIn) {
                    return None;
                }
                let program = twin.programs.version(&cursor.program, cursor.version)?;
                match &program.inactivity {
                    Some(inactivity) => {
                        let timezone = self.timezone(twin);
                        let ctx = Context { program, user: &self.header.user, timezone: &timezone, now };
                        Some((inactivity.after_ms, cursor.render(&ctx, &inactivity.text)))
                    }
                    None => self.creator_inactivity(twin),
                }
            }
            None => self.creator_inactivity(twin),
        }
    }

    fn creator_inactivity(&self, twin: &TwinSnapshot) -> Option<(i64, String)> {
        let settings = &twin.profile.nudges;
        Some((settings.policy.inactivity_after?.millis(), settings.inactivity_text.clone()?))
    }

    /// Arms an inactivity nudge when one applies and none is pending.
    pub(super) fn arm_inactivity(&mut self, twin: &TwinSnapshot, now: Timestamp, batch: &mut Batch) {
        let state = &self.header.state;
        if state.control.held_by.is_some()
            || state.audience.opted_out
            || state.nudged_since_user
            || state.nudges.iter().any(|n| n.kind == NudgeKind::Inactivity)
        {
            return;
        }
        if let Some((after, _)) = self.inactivity(twin, now) {
            self.schedule(batch, NudgeKind::Inactivity, now.plus_millis(after));
            batch.state_changed = true;
        }
    }

    fn decide(&self, twin: &TwinSnapshot, due_at: Timestamp, now: Timestamp, may_be_stale: bool) -> Decision {
        let mut policy = twin.profile.nudges.policy.clone();
        if !may_be_stale {
            policy.stale_after = nudge::DurationSpec::from_millis(i64::MAX);
        }
        nudge::decide(&policy, &self.audience(twin), due_at, now)
    }

    fn audience(&self, twin: &TwinSnapshot) -> Audience {
        let state = &self.header.state.audience;
        Audience {
            timezone: self.timezone(twin),
            opted_out: state.opted_out,
            unreachable: state.unreachable || self.header.state.reach.unreachable(),
            sent_on: state.sent_on,
            window: self.header.state.reach.window(),
        }
    }

    fn count_sent(&mut self, twin: &TwinSnapshot, now: Timestamp) {
        let timezone = self.timezone(twin);
        let audience = &mut self.header.state.audience;
        audience.sent_on = Some(nudge::record_sent(audience.sent_on, timezone, now));
    }

    /// The user's time zone: the one they gave, else the creator's default.
    pub(super) fn timezone(&self, twin: &TwinSnapshot) -> TimeZone {
        self.header
            .state
            .audience
            .timezone
            .as_deref()
            .and_then(|name| name.parse().ok())
            .unwrap_or(twin.profile.nudges.timezone)
    }

    fn defer(&mut self, batch: &mut Batch, nudge: &PendingNudge, until: Timestamp, reason: &'static str) {
        self.settle(batch, nudge.id, NudgeOutcome::Skipped);
        let id = self.schedule(batch, nudge.kind.clone(), until);
        batch.publish(LiveEventKind::NudgeDeferred { id, until, reason });
    }

    /// Writes a nudge row in this step's commit and tells the scheduler after it.
    fn schedule(&mut self, batch: &mut Batch, kind: NudgeKind, due_at: Timestamp) -> NudgeId {
        let state = &mut self.header.state;
        state.nudge_counter += 1;
        let id = NudgeId::of(self.header.id, state.nudge_counter);
        let kind_name = match kind {
            NudgeKind::Step { .. } => "step",
            NudgeKind::Inactivity => "inactivity",
        };
        let position = state.nudges.partition_point(|n| n.due_at <= due_at);
        state.nudges.insert(position, PendingNudge { id, due_at, kind });
        let row = ScheduledNudge {
            id,
            creator: self.header.creator,
            conversation: self.header.id,
            user: self.header.user.clone(),
            due_at,
        };
        batch.persist(Record::NudgeScheduled(row.clone()));
        batch.scheduled.push(row);
        batch.publish(LiveEventKind::NudgeScheduled { id, due_at, kind: kind_name });
        batch.state_changed = true;
        id
    }

    fn cancel_nudges(&mut self, batch: &mut Batch, which: impl Fn(&NudgeKind) -> bool) {
        let (cancelled, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.header.state.nudges).into_iter().partition(|n| which(&n.kind));
        self.header.state.nudges = kept;
        for nudge in cancelled {
            self.settle(batch, nudge.id, NudgeOutcome::Cancelled);
            batch.state_changed = true;
        }
    }

    fn settle(&self, batch: &mut Batch, id: NudgeId, outcome: NudgeOutcome) {
        batch.persist(Record::NudgeSettled { creator: self.header.creator, id, outcome });
    }

    /// A durable message from the twin's side: stored, sent to the user, shown live.
    pub(super) fn say(
        &mut self,
        twin: &TwinSnapshot,
        batch: &mut Batch,
        text: String,
        choices: Vec<Choice>,
        origin: Origin,
        now: Timestamp,
    ) {
        let mut message = self.append(twin, origin, text, None, None, now);
        message.choices = choices;
        if let Some(last) = self.history.back_mut() {
            last.choices.clone_from(&message.choices);
        }
        batch.persist(Record::Message(message.clone()));
        batch.send(Recipient::User, Outbound::Message(message.clone()));
        batch.publish(LiveEventKind::Message(message));
    }
}

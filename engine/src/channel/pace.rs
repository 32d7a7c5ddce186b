//! Provider rate limits as token buckets: a send may go when both the sender's bucket (a bot, a
//! business number) and the recipient's bucket (one chat) have a token. Pure: the outbox asks
//! when a send may go and waits for it; a 429 from the provider still wins (`retry_after`).

use std::collections::HashMap;

use crate::time::Timestamp;

/// A rate: `per_second` tokens refill each second, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    /// Telegram: about 30 messages per second per bot.
    pub const TELEGRAM_BOT: Rate = Rate { per_second: 30.0, burst: 30.0 };
    /// Telegram: about one message per second per chat (short bursts are tolerated).
    pub const TELEGRAM_CHAT: Rate = Rate { per_second: 1.0, burst: 3.0 };
    /// WhatsApp Cloud API: 80 messages per second per business number by default.
    pub const WHATSAPP_NUMBER: Rate = Rate { per_second: 80.0, burst: 80.0 };
    /// WhatsApp pair rate limit: one message every 6 seconds to one user on average, with bursts
    /// (error 131056 when exceeded).
    pub const WHATSAPP_PAIR: Rate = Rate { per_second: 1.0 / 6.0, burst: 10.0 };
}

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Timestamp,
}

impl Bucket {
    fn full(rate: Rate, now: Timestamp) -> Self {
        Self { tokens: rate.burst, at: now }
    }

    fn refill(&mut self, rate: Rate, now: Timestamp) {
        let elapsed = now.millis_since(self.at).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = Timestamp::from_millis(self.at.millis().max(now.millis()));
    }

    /// Milliseconds until one token is there (0: now).
    fn wait_ms(&self, rate: Rate) -> i64 {
        if self.tokens >= 1.0 { 0 } else { ((1.0 - self.tokens) / rate.per_second * 1000.0).ceil() as i64 }
    }
}

/// Buckets for one sender and each of its recipients.
#[derive(Debug, Clone)]
pub struct Pacer {
    sender_rate: Rate,
    chat_rate: Rate,
    sender: Option<Bucket>,
    chats: HashMap<String, Bucket>,
}

/// Recipient buckets kept before idle full ones are dropped (they would refill to full anyway).
const MAX_CHATS: usize = 10_000;

impl Pacer {
    pub fn new(sender_rate: Rate, chat_rate: Rate) -> Self {
        Self { sender_rate, chat_rate, sender: None, chats: HashMap::new() }
    }

    /// Takes a token for a send to `chat` at `now`, or says when to ask again.
    pub fn try_send(&mut self, chat: &str, now: Timestamp) -> Result<(), Timestamp> {
        let (sender_rate, chat_rate) = (self.sender_rate, self.chat_rate);
        let sender = self.sender.get_or_insert_with(|| Bucket::full(sender_rate, now));
        sender.refill(sender_rate, now);
        if self.chats.len() >= MAX_CHATS && !self.chats.contains_key(chat) {
            self.chats.retain(|_, b| {
                b.refill(chat_rate, now);
                b.tokens < chat_rate.burst
            });
        }
        let bucket = self.chats.entry(chat.to_owned()).or_insert_with(|| Bucket::full(chat_rate, now));
        bucket.refill(chat_rate, now);
        let wait = sender.wait_ms(sender_rate).max(bucket.wait_ms(chat_rate));
        if wait > 0 {
            return Err(now.plus_millis(wait));
        }
        sender.tokens -= 1.0;
        bucket.tokens -= 1.0;
        Ok(())
    }

    /// The provider said to wait (a 429 with `retry_after`): nothing goes to this chat, or from this
    /// sender when `whole_sender`, before `until`.
    pub fn hold(&mut self, chat: &str, whole_sender: bool, until: Timestamp, now: Timestamp) {
        let debt = |rate: Rate| -(until.millis_since(now).max(0) as f64 / 1000.0 * rate.per_second) + 0.0;
        let bucket = self.chats.entry(chat.to_owned()).or_insert_with(|| Bucket::full(self.chat_rate, now));
        bucket.refill(self.chat_rate, now);
        bucket.tokens = bucket.tokens.min(debt(self.chat_rate));
        if whole_sender {
            let sender = self.sender.get_or_insert_with(|| Bucket::full(self.sender_rate, now));
            sender.refill(self.sender_rate, now);
            sender.tokens = sender.tokens.min(debt(self.sender_rate));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn one_chat_gets_its_burst_then_one_message_a_second() {
        let mut pacer = Pacer::new(Rate::TELEGRAM_BOT, Rate::TELEGRAM_CHAT);
        for _ in 0..3 {
            assert!(pacer.try_send("a", at(0)).is_ok());
        }
        assert_eq!(pacer.try_send("a", at(0)), Err(at(1000)));
        assert!(pacer.try_send("b", at(0)).is_ok(), "another chat is not held up");
        assert!(pacer.try_send("a", at(1000)).is_ok());
    }

    #[test]
    fn the_bot_wide_limit_spreads_many_chats_over_time() {
        let mut pacer = Pacer::new(Rate::TELEGRAM_BOT, Rate::TELEGRAM_CHAT);
        let mut sent_at_zero = 0;
        for chat in 0..100 {
            if pacer.try_send(&chat.to_string(), at(0)).is_ok() {
                sent_at_zero += 1;
            }
        }
        assert_eq!(sent_at_zero, 30);
        // 100 sends over the bot limit take at least (100 - 30) / 30 s more.
        let mut now = 0;
        let mut sent = 30;
        let mut chat = 30;
        while sent < 100 {
            match pacer.try_send(&chat.to_string(), at(now)) {
                Ok(()) => {
                    sent += 1;
                    chat += 1;
                }
                Err(when) => now = when.millis(),
            }
        }
        assert!(now >= 2_300, "{now} ms");
    }

    #[test]
    fn retry_after_holds_the_chat_or_the_whole_sender() {
        let mut pacer = Pacer::new(Rate::TELEGRAM_BOT, Rate::TELEGRAM_CHAT);
        pacer.hold("a", false, at(5_000), at(0));
        let when = pacer.try_send("a", at(0)).unwrap_err();
        assert!(when >= at(5_000), "{when:?}");
        assert!(pacer.try_send("b", at(0)).is_ok());
        pacer.hold("b", true, at(3_000), at(0));
        assert!(pacer.try_send("c", at(0)).unwrap_err() >= at(3_000));
    }
}

//! The words that switch nudges off and on again (`STOP`, `START`, ...). The conversation checks
//! every user message with [`opt_command`] before anything else reads it.

/// What a user asked for with a whole-message command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptCommand {
    /// No more nudges until the user opts in again.
    Out,
    /// Nudges are welcome again.
    In,
}

/// Longest message that can be a command; longer text is a sentence, not a command.
const MAX_COMMAND_LEN: usize = 32;

const COMMANDS: [(&str, OptCommand); 7] = [
    ("stop", OptCommand::Out),
    ("stop nudges", OptCommand::Out),
    ("unsubscribe", OptCommand::Out),
    ("pause", OptCommand::Out),
    ("start", OptCommand::In),
    ("resume", OptCommand::In),
    ("unstop", OptCommand::In),
];

/// The command a message is, if the whole message is one: case-insensitive, surrounding whitespace
/// and trailing punctuation ignored (`" Stop! "`), words separated by any whitespace. A command
/// inside a sentence ("I can't stop eating") is not one.
pub fn opt_command(text: &str) -> Option<OptCommand> {
    let text = text.trim().trim_end_matches(|c: char| c.is_ascii_punctuation() || matches!(c, '…' | '！' | '。'));
    if text.len() > MAX_COMMAND_LEN {
        return None;
    }
    let mut words = text.split_whitespace();
    let (first, second) = (words.next()?, words.next());
    if words.next().is_some() {
        return None;
    }
    COMMANDS.iter().find_map(|(command, meaning)| {
        let (c1, c2) = command.split_once(' ').map_or((*command, None), |(a, b)| (a, Some(b)));
        let same = first.eq_ignore_ascii_case(c1)
            && match (second, c2) {
                (None, None) => true,
                (Some(w), Some(c)) => w.eq_ignore_ascii_case(c),
                _ => false,
            };
        same.then_some(*meaning)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_message_commands_switch_nudges_off_and_on() {
        let cases: &[(&str, Option<OptCommand>)] = &[
            ("STOP", Some(OptCommand::Out)),
            ("stop", Some(OptCommand::Out)),
            ("  Stop!  ", Some(OptCommand::Out)),
            ("stop.", Some(OptCommand::Out)),
            ("STOP NUDGES", Some(OptCommand::Out)),
            ("stop   nudges!!", Some(OptCommand::Out)),
            ("Unsubscribe", Some(OptCommand::Out)),
            ("pause", Some(OptCommand::Out)),
            ("START", Some(OptCommand::In)),
            ("resume", Some(OptCommand::In)),
            ("UnStop", Some(OptCommand::In)),
            ("start?", Some(OptCommand::In)),
        ];
        for (text, expected) in cases {
            assert_eq!(opt_command(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn a_command_word_inside_a_sentence_is_not_a_command() {
        let cases = [
            "I can't stop eating",
            "stop it",
            "please stop",
            "stop nudges now",
            "nudges stop",
            "restart",
            "stopp",
            "",
            "   ",
            "!!!",
            "started",
            "¿stop",
        ];
        for text in cases {
            assert_eq!(opt_command(text), None, "{text:?}");
        }
    }
}

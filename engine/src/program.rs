//! Coaching programs: the format creators write, its validation, and the pure cursor that walks a
//! user through a program version. The conversation owns a cursor; the actor carries out its effects.

pub mod condition;
mod enrolment;

pub use enrolment::{Enrolment, Phase};
mod compile;
mod cursor;
mod model;
mod set;
mod source;
mod template;
#[cfg(test)]
mod tests;

pub use compile::{BUILTIN_VARIABLES, MAX_SOURCE_BYTES, Problem, Problems, compile};
pub use cursor::{Context, Output, validate};
pub use model::{Expect, Inactivity, Program, Step, StepKind, Timer, Triggers};
pub use set::{BrokenProgram, ProgramSet};
pub use template::{Template, TemplateError};

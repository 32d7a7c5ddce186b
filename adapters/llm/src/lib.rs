//! Twin's language-model adapters, implementing [`twin_engine::ports::Llm`].
//!
//! For now only the built-in offline responder, which the api wires in when no model server is
//! configured and which tests and benchmarks use. OpenAI-compatible servers come later.

mod builtin;

pub use builtin::BuiltinResponder;

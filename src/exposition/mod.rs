//! Exposition: the store rendered as Prometheus text, served over HTTP.
//!
//! Rendering is a plain function over the store ([`text::render`]) so a program
//! that embeds promstatsd can render into any buffer without a socket; the daemon
//! serves it from its own thread ([`http::serve`]).
//!
//! May import: vocab, model, store, push.

pub mod check;
pub mod http;
pub mod text;
pub mod webconfig;

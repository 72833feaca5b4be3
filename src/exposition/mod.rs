//! Exposition: the pages Prometheus scrapes, served over HTTP.
//!
//! Owns the text 0.0.4 and OpenMetrics encoders ([`text::TextEncoder`], an
//! encoder over the collection model that [`crate::store::Store::collect`]
//! feeds), so a program that embeds promstatsd can render into any buffer
//! without a socket ([`text::render`]); the delimited protobuf encoder
//! ([`proto::ProtoEncoder`]) and the `Accept` negotiation between them
//! ([`http::negotiate`]); the web thread that serves both ports
//! ([`http::serve`], hyper on a current-thread runtime; the push port's pushes
//! go to [`crate::push::http`]); the page streamed in chunks as the client
//! reads it ([`stream`]); TLS and basic auth ([`webconfig`]); the page
//! checker used by tests and fuzzing ([`check`]); and the scrape counters.
//!
//! May import: vocab, sys, model, store, push, respond.

pub mod budget;
pub mod check;
pub mod conn;
pub mod http;
pub mod proto;
pub mod stream;
pub mod text;
pub mod webconfig;

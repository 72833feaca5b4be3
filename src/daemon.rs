//! The daemon: a [`Server`] started from the command line's config, signal
//! handling around it (SIGHUP reloads the mapping, SIGTERM and SIGINT stop).
//!
//! May import: sys, config, server.

use crate::config::Config;
pub use crate::server::RunError;
use crate::server::{Event, Server};
use crate::sys::raise_nofile_limit;

/// Run until SIGTERM or SIGINT (or a thread fails). Binding errors are returned
/// before anything starts.
pub fn run(cfg: Config) -> Result<(), RunError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    raise_nofile_limit();
    // Installed first, so a signal sent while the server starts waits for the
    // loop below instead of killing the process.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| RunError(format!("cannot install signal handlers: {e}")))?;
    let signal_handle = signals.handle();
    let server = Server::start(cfg)?;
    let notifier = server.notifier();
    let sig_thread = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for s in signals.forever() {
                if !notifier.send(Event::Signal(s)) {
                    break;
                }
            }
        })
        .map_err(|e| RunError(format!("cannot start the signal thread: {e}")))?;
    let result = loop {
        match server.next_event() {
            Some(Event::Signal(SIGHUP)) => {
                tracing::info!("SIGHUP received: reloading the mapping");
                server.reload_in_background();
            }
            Some(Event::Signal(s)) => {
                tracing::info!(signal = s, "shutting down");
                break Ok(());
            }
            Some(Event::Failed(what, e)) => {
                tracing::error!(thread = what, error = %e, "a thread failed; shutting down");
                break Err(RunError(format!("the {what} thread failed: {e}")));
            }
            None => break Ok(()),
        }
    };
    server.shutdown();
    signal_handle.close();
    let _ = sig_thread.join();
    tracing::info!("stopped");
    result
}

//! The `promstatsd` daemon.

use clap::Parser;
use promstatsd::cli::{Args, LogFormat, LogLevel};
use std::io::IsTerminal;
use std::process::ExitCode;

fn init_logging(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Logfmt => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (config, warnings) = match args.build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("promstatsd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(args.log_level, args.log_format);
    for w in warnings {
        tracing::warn!("{w}");
    }
    match promstatsd::daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("promstatsd: {e}");
            ExitCode::FAILURE
        }
    }
}

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
        LogFormat::Logfmt => builder.event_format(promstatsd::logfmt::Logfmt).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `--check-config`: load the mapping, say what was found, exit 0 or 1.
fn check_config(config: &promstatsd::Config) -> ExitCode {
    let Some(src) = &config.mapping else {
        return ExitCode::from(2);
    };
    match src.load(&config.mapper) {
        Ok((m, warnings)) => {
            for w in warnings {
                eprintln!("promstatsd: warning: {w}");
            }
            println!("{}: OK, {} mappings", src.describe(), m.rule_count());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("promstatsd: {e}");
            ExitCode::FAILURE
        }
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
    if args.check_config {
        return check_config(&config);
    }
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

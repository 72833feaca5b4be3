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

/// `--explain LINE…`: explain each line (or each stdin line, for `-`); exit
/// 1 if one does not parse, 2 if the mapping does not load.
fn explain(config: &promstatsd::Config, lines: &[String]) -> ExitCode {
    use promstatsd::explain::{Explainer, PACK_FILE};
    use promstatsd::reload::MappingSource;
    let (mapper, file) = match &config.mapping {
        None => (
            promstatsd::mapper::Mapper::new(config.mapper.clone()),
            String::new(),
        ),
        Some(src) => match src.load(&config.mapper) {
            Ok((m, warnings)) => {
                for w in warnings {
                    eprintln!("promstatsd: warning: {w}");
                }
                let file = match src {
                    MappingSource::Airflow => PACK_FILE.to_owned(),
                    MappingSource::File(_) => src.describe(),
                };
                (m, file)
            }
            Err(e) => {
                eprintln!("promstatsd: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let explainer = Explainer {
        mapper: &mapper,
        file: &file,
        opts: config.parse,
    };
    let mut parsed = true;
    let mut one = |line: &str| {
        let r = explainer.line(line);
        print!("{}", r.text);
        parsed &= r.parsed;
    };
    for arg in lines {
        if arg == "-" {
            for line in std::io::stdin().lines() {
                match line {
                    // Blank lines are skipped, as the listeners skip them.
                    Ok(l) if l.trim_end_matches('\r').is_empty() => {}
                    Ok(l) => one(l.trim_end_matches('\r')),
                    Err(e) => {
                        eprintln!("promstatsd: reading stdin: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
        } else {
            one(arg);
        }
    }
    if parsed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
    if !args.explain.is_empty() {
        return explain(&config, &args.explain);
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

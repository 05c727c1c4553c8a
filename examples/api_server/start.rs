//! What both example servers do first: their flags read into one line per mistake (exit
//! code 2) and the log set up. Shared with `mcp_server.rs` through `#[path]`.

use std::process::ExitCode;

use clap::Parser;

/// The flags, or the exit code to leave with: `--help` and `--version` print and succeed; a
/// mistake prints clap's message on one line, without the usage text, and exits 2.
pub(crate) fn parse_args<A: Parser>() -> Result<A, ExitCode> {
    match A::try_parse() {
        Ok(args) => Ok(args),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                // clap's own pointer to --help: the line ends with one already.
                .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                .collect();
            eprintln!("{} (see --help)", message.join(" "));
            Err(ExitCode::from(2))
        }
    }
}

/// Logs to standard error, at `RUST_LOG`'s levels (default `info`).
pub(crate) fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

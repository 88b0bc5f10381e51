//! The binary: parse the command line, set up logging on stderr, run, and
//! turn the outcome into an exit code. Everything else is in the library.

use clap::Parser;
use tap_gleap::cli::{Args, LogFormat};
use tap_gleap::error::exit;
use tracing_subscriber::EnvFilter;

fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version are "errors" that print and exit 0.
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    init_logging(args.log_format);
    match tap_gleap::run(args, Box::new(std::io::stdout())) {
        Ok(()) => {}
        Err(e) => {
            // A fatal error is always said, whatever RUST_LOG filters out.
            if tracing::enabled!(tracing::Level::ERROR) {
                tracing::error!("{e}");
            } else {
                eprintln!("ERROR tap-gleap: {e}");
            }
            std::process::exit(e.exit_code());
        }
    }
}

fn init_logging(format: LogFormat) {
    // `info` by default, for this crate and its dependencies alike; RUST_LOG overrides.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

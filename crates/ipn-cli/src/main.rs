//! The `ipn` command.
//!
//! - `send` (send.rs, with sample.rs building the event): an IPN simulator.
//! - `verify` (verify.rs): checks a captured message's signature.
//! - `gateway`, `migrate` (gateway.rs): the gateway as a service.
//! - `merchant` (merchant.rs): the merchant server as a service.
//! - `up` (up.rs): the gateway and the demo shop in one process.
//! - `listen` (listen.rs): follows a merchant's events and forwards them to a
//!   local URL.
//! - `bench` (bench.rs, bench/): the load generator behind the benchmark suite.
//!
//! Exit codes are part of the interface: 0 success, 1 the thing checked or
//! attempted failed (invalid signature, receiver refused), 2 bad usage or an
//! error before anything was checked.

mod bench;
mod gateway;
mod listen;
mod merchant;
mod sample;
mod send;
mod up;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: glibc's arenas contend under
/// the many small allocations of HTTP and JSON work (measured with `ipn bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "ipn",
    version,
    about = "Instant Payment Notifications: a gateway that delivers them signed, and tools to send and verify them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway and the demo shop together on one data directory: the whole flow
    Up(Box<up::Args>),
    /// Run the gateway: API, delivery engine, PayPal postback
    Gateway(Box<gateway::Args>),
    /// Run the merchant server: receive IPNs, verify them, store them before answering
    Merchant(Box<merchant::Args>),
    /// Apply the gateway's database schema (no key needed: the gateway's first start with
    /// --encryption-key encrypts the stored secrets)
    Migrate(gateway::MigrateArgs),
    /// Follow a merchant's events at a gateway and forward each, signed, to a local URL
    Listen(Box<listen::Args>),
    /// Send one realistic, signed test IPN to a URL and print the answer
    Send(Box<send::Args>),
    /// Check a captured message's Standard Webhooks signature
    Verify(verify::Args),
    /// Measure a scenario (delivery, retries, isolation); the last line printed is JSON figures
    Bench(Box<bench::Args>),
}

/// What a command reports when it cannot do its job at all (exit code 2).
type Fatal = anyhow::Error;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `ipn up` is watched by a person: it shows each IPN and order change
    // (debug elsewhere, so a busy shop's log stays quiet).
    let default_log = match cli.command {
        Command::Up(_) => "info,ipn_merchant::handler=debug",
        _ => "info",
    };
    init_logging(default_log);
    let outcome = match cli.command {
        Command::Up(args) => runtime_multi().and_then(|rt| rt.block_on(up::run(*args))),
        Command::Listen(args) => runtime().and_then(|rt| rt.block_on(listen::run(*args))),
        Command::Gateway(args) => runtime_multi().and_then(|rt| rt.block_on(gateway::run(*args))),
        Command::Merchant(args) => runtime_multi().and_then(|rt| rt.block_on(merchant::run(*args))),
        Command::Migrate(args) => gateway::migrate(args),
        Command::Send(args) => runtime().and_then(|rt| rt.block_on(send::run(*args))),
        Command::Verify(args) => verify::run(args),
        Command::Bench(args) => runtime_multi().and_then(|rt| rt.block_on(bench::run(*args))),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs to standard error at `default`; `IPN_LOG` (e.g. `debug`,
/// `ipn_gateway=trace`) sets the level instead.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IPN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The services use every core.
fn runtime_multi() -> Result<tokio::runtime::Runtime, Fatal> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn runtime() -> Result<tokio::runtime::Runtime, Fatal> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

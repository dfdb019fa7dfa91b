//! `cmkguard`: parses flags and hands them to [`cmkguard_cli::run`].

use std::process::ExitCode;

use clap::Parser;

/// jemalloc: an audit of an organization makes millions of small allocations (SDK requests and
/// responses, records) on many threads, which glibc's malloc serves at a quarter of the CPU.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cmkguard_cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing::Level::WARN.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    cmkguard_cli::run(
        cli,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
    )
    .await
}

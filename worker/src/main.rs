use anyhow::Result;
use clap::Parser;

/// lipcast-worker: serves exactly one avatar session for lipcast-supervisor, then exits.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {}

fn main() -> Result<()> {
    let _args = Args::parse();
    Ok(())
}

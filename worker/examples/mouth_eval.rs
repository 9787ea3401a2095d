//! The lip-sync report until `lipcast-worker eval` is wired in `main.rs`: the same `lipcast_worker::eval::run`.
//!
//! `cargo run --release -p lipcast-worker --example mouth_eval -- [--data DIR] [--pack DIR] [--verbose]`

use clap::Parser;

#[derive(Parser)]
#[command(about = "Lip-sync report: network vs DSP front end on the held-out voice")]
struct Cli {
    #[command(flatten)]
    eval: lipcast_worker::eval::EvalArgs,
}

fn main() -> anyhow::Result<()> {
    lipcast_worker::eval::run(&Cli::parse().eval)
}

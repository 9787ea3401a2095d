//! lipcast-eval: the lip-sync report of the audio front ends (the network, without its silence gate, and the
//! DSP baseline) on the held-out voice, scored against the targets from its phoneme timing.

use clap::Parser;
use lipcast_tools::eval::{self, EvalArgs};

/// The lip-sync report: both audio front ends on the held-out voice (`models/eval/mouth-heldout` unless --data
/// says otherwise); the metrics are described in docs/models.md.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    args: EvalArgs,
}

fn main() -> anyhow::Result<()> {
    eval::run(&Cli::parse().args)
}

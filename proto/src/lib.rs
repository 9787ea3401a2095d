//! The supervisor <-> worker contract (see `worker.proto`).

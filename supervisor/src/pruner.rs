//! Prunes terminal tasks by age (TASK_RETENTION_SECONDS) and count (MAX_TASK_HISTORY).

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::store::TaskStore;

pub async fn run(store: TaskStore, config: Arc<Config>) {
    let mut tick = tokio::time::interval(Duration::from_secs(config.task_prune_interval_seconds));
    loop {
        tick.tick().await;
        match store
            .prune(config.task_retention(), config.max_task_history)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "pruned terminal tasks"),
            Err(e) => tracing::error!(error = %e, "pruning tasks failed"),
        }
    }
}

use lipcast_supervisor::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::load();
    lipcast_supervisor::logging::init(config.log_format);
    match lipcast_supervisor::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

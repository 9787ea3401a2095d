use lipcast_supervisor::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::load();
    if config.openapi {
        print!("{}", lipcast_supervisor::http::api_doc::pretty());
        return std::process::ExitCode::SUCCESS;
    }
    lipcast_supervisor::logging::init(config.log_format);
    match lipcast_supervisor::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

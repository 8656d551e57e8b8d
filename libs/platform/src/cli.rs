//! The `main` of every service binary:
//!
//! ```text
//! <service> [serve] [--role api|worker|all]   run (default: both roles)
//! <service> migrate                            apply migrations and exit
//! <service> health                             exit 0 when the local server reports SERVING
//! ```
//! (`health` is the container health check: distroless images have no shell or curl.)

use crate::config::{self, ServiceConfig};
use crate::server::{self, Roles, Service};

/// Parses arguments, loads config, starts telemetry and runs the service until SIGTERM.
pub async fn main<S: Service>() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = parse(&args)?;
    let config = config::load(S::default_config())?;
    match command {
        Command::Health => health_check(config.common().grpc.listen).await,
        Command::Migrate => {
            let _telemetry = crate::telemetry::init(S::NAME, &config.common().telemetry)?;
            let common = config.common();
            let pool = crate::db::connect(&common.database, common.create_database_if_missing()).await?;
            crate::db::migrate(&pool, S::migrator()).await?;
            tracing::info!(service = S::NAME, "migrations applied");
            Ok(())
        }
        Command::Serve(roles) => {
            let _telemetry = crate::telemetry::init(S::NAME, &config.common().telemetry)?;
            let running = server::start::<S>(config, roles).await?;
            let token = running.shutdown_token();
            tokio::spawn(async move {
                server::shutdown_signal().await;
                token.cancel();
            });
            running.wait().await
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Serve(Roles),
    Migrate,
    Health,
}

/// Asks the server on `listen` (0.0.0.0 means this host) for its overall health.
async fn health_check(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let ip = if listen.ip().is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { listen.ip() };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{ip}:{}", listen.port()))?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(3));
    let mut client = HealthClient::new(endpoint.connect().await?);
    let status = client.check(HealthCheckRequest { service: String::new() }).await?.into_inner().status;
    anyhow::ensure!(status == ServingStatus::Serving as i32, "not serving (status {status})");
    Ok(())
}

fn parse(args: &[String]) -> anyhow::Result<Command> {
    let mut roles = Roles::ALL;
    let mut command = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "serve" | "migrate" | "health" if command.is_none() => command = Some(arg.clone()),
            "--role" => {
                roles = match it.next().map(String::as_str) {
                    Some("api") => Roles { api: true, worker: false },
                    Some("worker") => Roles { api: false, worker: true },
                    Some("all") => Roles::ALL,
                    other => anyhow::bail!("--role takes api, worker or all, not {other:?}"),
                }
            }
            "-h" | "--help" => {
                println!("usage: <service> [serve [--role api|worker|all] | migrate | health]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(match command.as_deref() {
        Some("migrate") => Command::Migrate,
        Some("health") => Command::Health,
        _ => Command::Serve(roles),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn roles_and_subcommands_parse() {
        assert_eq!(parse(&args("")).ok(), Some(Command::Serve(Roles::ALL)));
        assert_eq!(parse(&args("migrate")).ok(), Some(Command::Migrate));
        assert_eq!(parse(&args("health")).ok(), Some(Command::Health));
        assert_eq!(parse(&args("serve --role worker")).ok(), Some(Command::Serve(Roles { api: false, worker: true })));
        assert!(parse(&args("--role everything")).is_err());
        assert!(parse(&args("launch")).is_err());
    }
}

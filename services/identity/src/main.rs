//! `identity [serve [--role api|worker|all] | migrate | promote-admin EMAIL]`

use festival_identity::{Identity, store};
use festival_platform::server::Service;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The test-only race-hooks build has its locks removed: it must never run for real.
    anyhow::ensure!(!cfg!(feature = "race-hooks"), "built with the test-only race-hooks feature; refusing to run");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("promote-admin") {
        return promote_admin(args.get(1).map(String::as_str)).await;
    }
    festival_platform::cli::main::<Identity>().await
}

/// Makes an existing account a platform ADMIN (the first admin has to come from somewhere).
async fn promote_admin(email: Option<&str>) -> anyhow::Result<()> {
    let email = email.ok_or_else(|| anyhow::anyhow!("usage: identity promote-admin EMAIL"))?;
    let email =
        festival_identity::domain::email::Email::parse(email).map_err(|e| anyhow::anyhow!("email {}", e.describe()))?;
    let config = festival_platform::config::load(Identity::default_config())?;
    let pool = festival_platform::db::connect(&config.common.database, false).await?;
    let mut conn = pool.acquire().await?;
    anyhow::ensure!(
        store::users::set_role(&mut conn, email.as_str(), festival_platform::auth::Role::Admin).await?,
        "no account with that email"
    );
    println!("promoted to ADMIN");
    Ok(())
}

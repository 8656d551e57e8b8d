//! `cashless [serve [--role api|worker|all] | migrate | health]`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The test-only race-hooks build has its balance guard removed: never run it for real.
    anyhow::ensure!(!cfg!(feature = "race-hooks"), "built with the test-only race-hooks feature; refusing to run");
    festival_platform::cli::main::<festival_cashless::Cashless>().await
}

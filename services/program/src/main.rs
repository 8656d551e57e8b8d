//! `program [serve [--role api|worker|all] | migrate | health]`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    festival_platform::cli::main::<festival_program::Program>().await
}

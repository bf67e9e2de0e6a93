use clap::Parser;

fn main() -> std::process::ExitCode {
    dify_cfg::cli::run(dify_cfg::cli::Cli::parse()).into()
}

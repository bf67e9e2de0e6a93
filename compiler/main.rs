use clap::Parser;

fn main() -> std::process::ExitCode {
    dify_cfg::run(dify_cfg::Cli::parse()).into()
}

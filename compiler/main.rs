use clap::Parser;

fn main() {
    let cli = dify_cfg::cli::Cli::parse();
    std::process::exit(dify_cfg::cli::run(cli));
}

//! `dify-cfg completions <shell>`: a completion script for bash, zsh,
//! fish, elvish or PowerShell, generated from the command line as clap
//! parses it, so it completes exactly the commands and options there are.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::args::Cli;
use crate::cli::output::{Report, Text};

/// The name the scripts complete (the binary's).
pub const BIN: &str = "dify-cfg";

/// A shell's completion script.
pub struct Script {
    pub shell: Shell,
    pub text: String,
}

pub fn run(shell: Shell) -> Script {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut buf);
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if shell == Shell::Bash {
        text = bash_arms(&text);
    }
    Script { shell, text }
}

/// clap_complete's bash script names the state of a command line one way
/// in its loop over the words (`dify__cfg__subcmd__build`) and another in
/// the `case` arms that complete each command (`dify__subcmd__cfg__subcmd__build`)
/// when the binary's name has a hyphen, so no command's options would ever
/// complete (clap-rs/clap#6421): the arms are spelt as the loop spells
/// them. A script without the mismatch is left as it is.
fn bash_arms(script: &str) -> String {
    let wrong = format!("{}__subcmd__", BIN.replace('-', "__subcmd__"));
    let right = format!("{}__subcmd__", BIN.replace('-', "__"));
    script
        .split_inclusive('\n')
        .map(|line| {
            let arm = line.trim_start();
            match arm.strip_prefix(&wrong) {
                Some(rest) if arm.trim_end().ends_with(')') => {
                    let indent = &line[..line.len() - arm.len()];
                    format!("{indent}{right}{rest}")
                }
                _ => line.to_string(),
            }
        })
        .collect()
}

impl Report for Script {
    fn text(&self) -> Text {
        Text {
            stdout: self.text.clone(),
            stderr: String::new(),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "shell": self.shell.to_string(), "script": self.text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_every_command() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let s = run(shell);
            for command in [
                "check", "build", "explain", "commit", "diff", "audit", "man",
            ] {
                assert!(s.text.contains(command), "{shell}: no {command}");
            }
            assert!(s.text.contains("profile"), "{shell}");
            assert_eq!(run(shell).text, s.text, "{shell}: not deterministic");
        }
    }

    #[test]
    fn bash_case_arms_are_spelt_as_the_loop_spells_the_state() {
        let script = "            dify__cfg,build)\n                cmd=\"dify__cfg__subcmd__build\"\n        dify__cfg)\n        dify__subcmd__cfg__subcmd__build)\n            opts=\"dify__subcmd__cfg__subcmd__x\"\n";
        assert_eq!(
            bash_arms(script),
            "            dify__cfg,build)\n                cmd=\"dify__cfg__subcmd__build\"\n        dify__cfg)\n        dify__cfg__subcmd__build)\n            opts=\"dify__subcmd__cfg__subcmd__x\"\n"
        );
        let bash = run(Shell::Bash).text;
        assert!(
            bash.contains("\n        dify__cfg__subcmd__build)\n"),
            "{bash}"
        );
        assert!(!bash.contains("dify__subcmd__cfg"), "{bash}");
    }
}

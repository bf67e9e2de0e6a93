//! The integration tests, as one test binary (one link, one run): each
//! module is a suite, `support` their shared helpers.

mod apply;
mod audit;
mod bad_input;
mod build_rehearsal;
mod cli;
mod compat;
mod concurrency;
mod crash;
mod dify_settings;
mod disk_full;
mod fleet;
mod git_real;
mod gitops;
mod golden;
mod helm_chart;
mod incremental;
mod injection;
mod layers;
mod memory_floors;
mod one_run;
mod operator;
mod out_dir;
mod pipes;
mod properties;
mod reference;
mod rehearsal;
mod rollout;
mod rollout_release;
mod secrets;
mod skips;
mod squid;
mod support;
mod tls;
mod tools;
mod upgrade;

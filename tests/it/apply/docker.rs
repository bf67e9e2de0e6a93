//! Docker's firewall backend: the agent applies a release only where the
//! containers' traffic passes iptables' DOCKER-USER chain, and refuses,
//! before it changes anything, a Docker on nftables or a FORWARD chain
//! without the jump. The refusal is the box's, not the commit's: the next
//! run tries again.

use super::{World, calls, have_tools, text};

/// A run refused for the box's Docker: exit 1, the message names the fix,
/// only the checks ran, nothing is recorded, and the same commit applies
/// once Docker is right.
fn assert_refused_for_docker(w: &World, env: &[(&str, &str)], says: &str, checks: usize) {
    let before = w.applied();
    let next = w.commit("a release to apply");
    let (out, log) = w.apply(30, env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains(says), "{said}");
    assert!(
        said.contains(r#"set "firewall-backend": "iptables""#),
        "{said}"
    );
    let expected = [
        "docker info --format {{json .FirewallBackend}} (secrets=absent)",
        "iptables -S FORWARD (secrets=absent)",
    ];
    assert_eq!(calls(&log), expected[..checks], "\n{log}");
    assert_eq!(w.applied(), before);
    assert!(!w.state.join("failed").exists(), "not the commit's fault");
    assert!(!w.release(&next).exists());
    let (out, _) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.applied().as_deref(), Some(next.as_str()));
}

#[test]
fn a_docker_on_nftables_is_refused_before_anything_changes() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    assert!(w.apply(30, &[]).0.status.success());
    assert_refused_for_docker(
        &w,
        &[("STUB_BACKEND", r#"{"Driver":"nftables","Info":[]}"#)],
        "Docker's firewall backend is nftables",
        1,
    );
    // A driver it does not know is no better.
    assert_refused_for_docker(
        &w,
        &[("STUB_BACKEND", r#"{"Driver":"ebpf"}"#)],
        "Docker's firewall backend is 'ebpf', not iptables",
        1,
    );
}

#[test]
fn a_forward_chain_without_the_jump_to_docker_user_is_refused() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    assert!(w.apply(30, &[]).0.status.success());
    assert_refused_for_docker(
        &w,
        &[("STUB_NO_JUMP", "1")],
        "the FORWARD chain does not jump to DOCKER-USER",
        2,
    );
}

#[test]
fn a_docker_down_is_refused_and_engines_before_the_field_are_iptables() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    assert!(w.apply(30, &[]).0.status.success());
    let next = w.commit("a release to apply");
    let (out, log) = w.apply(
        30,
        &[(
            "STUB_INFO_ERROR",
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
        )],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is docker running?"), "{}", text(&out));
    assert_eq!(calls(&log).len(), 1, "{log}");
    assert!(!w.release(&next).exists());
    // An engine that does not report the field (`null`), a docker command
    // that does not know it, and iptables with firewalld: applied.
    for env in [
        ("STUB_BACKEND", "null"),
        (
            "STUB_INFO_ERROR",
            r#"template: :1:7: executing "" at <.FirewallBackend>: can't evaluate field FirewallBackend in type system.Info"#,
        ),
        (
            "STUB_BACKEND",
            r#"{"Driver":"iptables+firewalld","Info":[]}"#,
        ),
    ] {
        let next = w.commit("another release");
        let (out, log) = w.apply(30, &[env]);
        assert!(out.status.success(), "{env:?}: {}\n{log}", text(&out));
        assert_eq!(w.applied().as_deref(), Some(next.as_str()), "{env:?}");
    }
}

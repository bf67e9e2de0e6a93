//! The rehearsal's network: a clinic box as a network namespace with its
//! own Docker engine, and the hosts around it, each a namespace of its own,
//! joined by veth pairs. No namespace has a default route, and no interface
//! of the machine's own namespace is touched: nothing a probe sends can
//! leave the namespaces made here.
//!
//! ```text
//!   dcr-lan  (the LAN) ─── lan0  (the box)  ┐
//!   dcr-out  192.0.2.7  ── out0  192.0.2.1  ├ dcr-box (dockerd, firewall)
//!   dcr-hq (a switch) ──── hq0   10.0.0.10  ┘
//!     ├ dcr-admin   10.0.0.5   (in the site's ssh-from)
//!     ├ dcr-admin2  10.0.0.20  (admin network, not ssh-from)
//!     └ dcr-llm     10.0.0.40  (the egress endpoint)
//! ```
//!
//! The LAN and the box's address are the site's own (clinic-01: LAN
//! 10.20.1.0/24, box 10.20.1.10, client 10.20.1.1); the head office's are
//! the example fleet's (admin 10.0.0.0/24, ssh from 10.0.0.0/28, LLM
//! gateway 10.0.0.40:443); "outside" is TEST-NET-1, which no site admits.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BOX: &str = "dcr-box";

/// The site's LAN as the rehearsal builds it: the box's address and a
/// client beside it, with the prefix length (set once, from the site).
pub struct Lan {
    pub box_addr: String,
    pub client: String,
    pub prefix: u8,
}

static LAN: std::sync::OnceLock<Lan> = std::sync::OnceLock::new();

/// Take the LAN of the site: the box at its `network.address`, the client
/// at the first other host address of `network.lan`.
pub fn set_lan(net: ipnet::Ipv4Net, address: std::net::Ipv4Addr) {
    let client = net
        .hosts()
        .find(|a| *a != address)
        .expect("a LAN with two hosts");
    let lan = Lan {
        box_addr: address.to_string(),
        client: client.to_string(),
        prefix: net.prefix_len(),
    };
    if let Some(old) = LAN.get() {
        assert_eq!(old.box_addr, lan.box_addr, "one rehearsal LAN per test run");
        return;
    }
    let _ = LAN.set(lan);
}

pub fn lan() -> &'static Lan {
    LAN.get().expect("the LAN is set first")
}
pub const RUN_DIR: &str = "/run/dify-cfg-rehearsal";

/// A host around the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Host {
    Lan,
    Admin,
    Admin2,
    Outside,
    Llm,
}

impl Host {
    pub fn ns(self) -> &'static str {
        match self {
            Host::Lan => "dcr-lan",
            Host::Admin => "dcr-admin",
            Host::Admin2 => "dcr-admin2",
            Host::Outside => "dcr-out",
            Host::Llm => "dcr-llm",
        }
    }

    pub fn label(self) -> String {
        let name = match self {
            Host::Lan => "LAN",
            Host::Admin | Host::Admin2 => "admin",
            Host::Outside => "outside",
            Host::Llm => "LLM",
        };
        format!("{name} {}", self.addr())
    }

    pub fn addr(self) -> &'static str {
        match self {
            Host::Lan => lan().client.as_str(),
            Host::Admin => "10.0.0.5",
            Host::Admin2 => "10.0.0.20",
            Host::Outside => "192.0.2.7",
            Host::Llm => "10.0.0.40",
        }
    }
}

/// The IPv6 LAN a variant of the site adds; the box and a client on it.
pub const LAN6_NET: &str = "fd00:20:1::/64";
pub const LAN6_BOX: &str = "fd00:20:1::10";
pub const LAN6_CLIENT: &str = "fd00:20:1::50";
pub const OUTSIDE_BOX: &str = "192.0.2.1";

/// Run a command, returning its output; panics only when it cannot start.
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]))
}

/// Run a command that must succeed.
pub fn must(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "`{}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `args` in a host's namespace.
pub fn in_host(host: Host, args: &[&str]) -> Output {
    let mut all = vec!["ip", "netns", "exec", host.ns()];
    all.extend_from_slice(args);
    run(&all)
}

/// A command in the box's namespace: nsenter keeps the machine's mounts
/// (and cgroups), which Docker needs; `ip netns exec` would remount /sys.
pub fn in_box_command(program: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{BOX}"))
        .arg("--")
        .arg(program);
    c
}

pub fn in_box(args: &[&str]) -> Output {
    in_box_command(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]))
}

/// The cleanup script: the engine, its files and the namespaces of any
/// earlier run.
pub fn cleanup() {
    let script = crate::support::repo().join("tests/rehearsal/cleanup.sh");
    must(&["sh", script.to_str().unwrap()]);
}

fn veth(a_ns: &str, a: &str, b_ns: &str, b: &str) {
    must(&[
        "ip", "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns,
    ]);
    must(&["ip", "-n", a_ns, "link", "set", a, "up"]);
    must(&["ip", "-n", b_ns, "link", "set", b, "up"]);
}

fn addr(ns: &str, dev: &str, cidr: &str) {
    if cidr.contains(':') {
        // No duplicate address detection: the address is usable at once.
        must(&[
            "ip", "-6", "-n", ns, "addr", "add", cidr, "dev", dev, "nodad",
        ]);
    } else {
        must(&["ip", "-n", ns, "addr", "add", cidr, "dev", dev]);
    }
}

/// Make the namespaces and links. The LAN carries IPv6 too, for the
/// variant of the site that has an IPv6 LAN.
pub fn topology() {
    for ns in [
        BOX,
        "dcr-hq",
        "dcr-lan",
        "dcr-admin",
        "dcr-admin2",
        "dcr-out",
        "dcr-llm",
    ] {
        must(&["ip", "netns", "add", ns]);
        must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    let l = lan();
    veth(BOX, "lan0", "dcr-lan", "eth0");
    addr(BOX, "lan0", &format!("{}/{}", l.box_addr, l.prefix));
    addr("dcr-lan", "eth0", &format!("{}/{}", l.client, l.prefix));
    addr(BOX, "lan0", &format!("{LAN6_BOX}/64"));
    addr("dcr-lan", "eth0", &format!("{LAN6_CLIENT}/64"));
    veth(BOX, "out0", "dcr-out", "eth0");
    addr(BOX, "out0", &format!("{OUTSIDE_BOX}/24"));
    addr("dcr-out", "eth0", "192.0.2.7/24");
    must(&[
        "ip", "-n", "dcr-hq", "link", "add", "hqbr", "type", "bridge",
    ]);
    must(&["ip", "-n", "dcr-hq", "link", "set", "hqbr", "up"]);
    for (ns, dev, port, cidr) in [
        (BOX, "hq0", "box", "10.0.0.10/24"),
        ("dcr-admin", "eth0", "admin", "10.0.0.5/24"),
        ("dcr-admin2", "eth0", "admin2", "10.0.0.20/24"),
        ("dcr-llm", "eth0", "llm", "10.0.0.40/24"),
    ] {
        veth(ns, dev, "dcr-hq", port);
        must(&["ip", "-n", "dcr-hq", "link", "set", port, "master", "hqbr"]);
        addr(ns, dev, cidr);
    }
    // The head office reaches the clinic's LAN through the box; the LAN and
    // the outside host may try the containers' own networks directly.
    let routes = [
        ("dcr-admin", l.box_addr.as_str(), "10.0.0.10"),
        ("dcr-admin", "172.16.0.0/12", "10.0.0.10"),
        ("dcr-admin2", l.box_addr.as_str(), "10.0.0.10"),
        ("dcr-admin2", "172.16.0.0/12", "10.0.0.10"),
        ("dcr-lan", "172.16.0.0/12", l.box_addr.as_str()),
        ("dcr-out", "172.16.0.0/12", OUTSIDE_BOX),
        ("dcr-out", l.box_addr.as_str(), OUTSIDE_BOX),
    ];
    for (ns, to, via) in routes {
        must(&["ip", "-n", ns, "route", "add", to, "via", via]);
    }
}

/// The box's Docker engine: Debian's dockerd in the box's namespace, with
/// its own data root, exec root and socket.
pub struct Engine {
    pub work: PathBuf,
    pub socket: PathBuf,
    log: PathBuf,
    daemon: Option<std::process::Child>,
}

impl Engine {
    pub fn new(work: &Path) -> Engine {
        std::fs::create_dir_all(RUN_DIR).unwrap();
        std::fs::write(format!("{RUN_DIR}/workdir"), work.to_str().unwrap()).unwrap();
        Engine {
            work: work.to_path_buf(),
            socket: PathBuf::from(format!("{RUN_DIR}/docker.sock")),
            log: work.join("dockerd.log"),
            daemon: None,
        }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Start dockerd (again, after a "reboot") and wait for its API.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let daemon = in_box_command("dockerd")
            .args(["--data-root", self.work.join("docker").to_str().unwrap()])
            .args(["--exec-root", &format!("{RUN_DIR}/exec")])
            .args(["--pidfile", &format!("{RUN_DIR}/docker.pid")])
            .args(["--host", &self.host()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start dockerd");
        self.daemon = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not start: see {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stop dockerd as a shutdown does: its containers stop with it.
    pub fn stop(&mut self) {
        let mut daemon = self.daemon.take().expect("dockerd runs");
        must(&["kill", "-TERM", &daemon.id().to_string()]);
        let status = daemon.wait().unwrap();
        assert!(
            status.success(),
            "dockerd stopped with {status}: see {}",
            self.log.display()
        );
    }

    /// The docker client against this engine, run in the box's namespace
    /// (compose's health waits and port checks see the box's network).
    pub fn command(&self) -> Command {
        let mut c = in_box_command("docker");
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_BUILDKIT", "0");
        c
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run docker")
    }

    /// What a container has logged so far (its output and error output).
    pub fn logs(&self, container: &str) -> String {
        crate::support::output_text(&self.docker(&["logs", container]))
    }

    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The subnets Docker gave the site's networks, for direct probes.
pub fn container_ip(engine: &Engine, container: &str) -> Option<IpAddr> {
    let out = engine.docker_ok(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        container,
    ]);
    out.split_whitespace().next().and_then(|a| a.parse().ok())
}

//! A network namespace whose path to the database can be cut silently, for tests that prove
//! requests fail fast instead of hanging when PostgreSQL stops answering.
//!
//! Each instance takes one free /29 of 198.18.0.0/15 (the benchmarking range), its slot `S`:
//! - root namespace: veth `sbhS` with `.1` (the test's side of HTTP) and `.2`, the database
//!   alias, where a forwarder in this process relays to PostgreSQL;
//! - namespace `sbpart-PID-N`: veth `sbnS` with `.3` (the service binds here), `lo`, and
//!   `sbdS`, a veth whose peer stays down, so whatever is routed to it is discarded.
//!
//! The partition routes the alias to `sbdS` inside the namespace: every packet to the database,
//! SYNs included, vanishes without an RST or ICMP error, so connects and sends hang as on a
//! dead network. Strict reverse-path filtering there drops what the database side still sends,
//! since the way back to the alias no longer leads through `sbnS`. HTTP between `.1` and `.3`
//! keeps flowing. Drop deletes the veth pair and the namespace; the next `create` does the
//! same for those that dead processes left behind (routes and addresses go with them).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const PREFIX: &str = "sbpart-";
/// The /29 slots of 198.18.0.0/15.
const SLOTS: u32 = 1 << 14;

type Pairs = Arc<Mutex<HashMap<u64, [TcpStream; 2]>>>;

/// A network namespace for the service, with a database path that can be cut.
pub struct Partitionable {
    pub name: String,
    slot: u32,
    forwarder: SocketAddr,
    stopping: Arc<AtomicBool>,
    pairs: Pairs,
}

impl Partitionable {
    /// None when this process cannot create network namespaces (not root, no `ip`):
    /// the caller reports the test as not run. Panics when a later step fails.
    pub fn create(postgres_target: &str) -> Option<Partitionable> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        remove_stale_namespaces();
        let pid = std::process::id();
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let name = format!("{PREFIX}{pid}-{n}");
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name]).ok()?;
        // Interface names are unique in the root namespace: the first free `sbhS` is ours.
        let start = (pid as u32).wrapping_mul(64).wrapping_add(n as u32);
        let mut slot = None;
        for s in (0..256).map(|i| start.wrapping_add(i) % SLOTS) {
            let add = format!("link add sbh{s} type veth peer name sbn{s} netns {name}");
            match ip_line(&add) {
                Ok(_) => slot = Some(s),
                Err(e) if e.contains("exists") => continue,
                Err(e) => abandon(&name, format!("ip {add}: {e}")),
            }
            break;
        }
        let Some(slot) = slot else {
            abandon(&name, "no free slot in 198.18.0.0/15".into())
        };
        // From here on, Drop cleans up after a panic too.
        let mut partitionable = Partitionable {
            name,
            slot,
            forwarder: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            stopping: Arc::default(),
            pairs: Arc::default(),
        };
        partitionable.configure();
        let listener = TcpListener::bind((partitionable.alias(), 0)).expect("bind the forwarder");
        partitionable.forwarder = listener.local_addr().expect("forwarder address");
        let (stopping, pairs) = (partitionable.stopping.clone(), partitionable.pairs.clone());
        forward(listener, postgres_target.to_owned(), stopping, pairs);
        Some(partitionable)
    }

    fn configure(&self) {
        let (s, name) = (self.slot, &self.name);
        let (host, alias, ns) = (self.host(), self.alias(), self.ns_addr());
        for step in [
            format!("addr add {host}/29 dev sbh{s}"),
            format!("addr add {alias}/29 dev sbh{s}"),
            format!("link set sbh{s} up"),
            format!("-n {name} addr add {ns}/29 dev sbn{s}"),
            format!("-n {name} link set sbn{s} up"),
            format!("-n {name} link set lo up"),
            // Its peer stays down: whatever is routed to `sbdS` is discarded without a word.
            format!("-n {name} link add sbd{s} type veth peer name sbd{s}p"),
            format!("-n {name} link set sbd{s} arp off up"),
        ] {
            ip_line(&step).unwrap_or_else(|e| panic!("ip {step}: {e}"));
        }
        // Strict: a packet from the alias is dropped unless the route back to it uses `sbnS`.
        let rp_filter = "echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter";
        ip(&["netns", "exec", name, "sh", "-c", rp_filter])
            .unwrap_or_else(|e| panic!("{rp_filter} in {name}: {e}"));
    }

    fn address(&self, host: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + self.slot * 8 + host)
    }

    /// The root namespace's address on the link, the source of the test's HTTP requests.
    fn host(&self) -> Ipv4Addr {
        self.address(1)
    }

    /// The database's address as seen from the namespace: the forwarder.
    fn alias(&self) -> Ipv4Addr {
        self.address(2)
    }

    fn ns_addr(&self) -> Ipv4Addr {
        self.address(3)
    }

    /// `postgres://postgres@ALIAS:PORT/DB_NAME`, reachable from inside the namespace only.
    pub fn database_url(&self, db_name: &str) -> String {
        format!("postgres://postgres@{}/{db_name}", self.forwarder)
    }

    /// `ADDRESS:0`, for the service's `--bind`.
    pub fn bind_addr(&self) -> String {
        format!("{}:0", self.ns_addr())
    }

    /// The address the test reaches the service at, from the root namespace.
    pub fn service_host(&self) -> String {
        self.ns_addr().to_string()
    }

    /// `program` run inside the namespace (`ip netns exec` keeps the process id).
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// From now on every packet between the namespace and the database is dropped silently.
    pub fn drop_database_packets(&self) {
        let (name, alias, s) = (&self.name, self.alias(), self.slot);
        let route = format!("-n {name} route replace {alias}/32 dev sbd{s}");
        ip_line(&route).unwrap_or_else(|e| panic!("ip {route}: {e}"));
    }

    /// Ends the partition; retransmissions then get through again.
    pub fn heal(&self) {
        let route = format!("-n {} route del {}/32", self.name, self.alias());
        match ip_line(&route) {
            Err(e) if !e.contains("No such process") => panic!("ip {route}: {e}"),
            _ => {}
        }
    }
}

impl Drop for Partitionable {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.forwarder); // wakes the accepting thread
        if let Ok(mut pairs) = self.pairs.lock() {
            for stream in pairs.drain().flat_map(|(_, pair)| pair) {
                let _ = stream.shutdown(Shutdown::Both); // the database side ends its session
            }
        }
        // Deleting one end deletes the pair at once; the namespace itself, and `sbdS` with it,
        // the kernel frees later, once no process is left inside.
        let _ = ip_line(&format!("link del sbh{}", self.slot));
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Deletes the namespace `name` and panics with `why`.
fn abandon(name: &str, why: String) -> ! {
    let _ = ip(&["netns", "del", name]);
    panic!("{why}")
}

/// Runs `ip` with the words of `line`.
fn ip_line(line: &str) -> Result<String, String> {
    ip(&line.split_whitespace().collect::<Vec<_>>())
}

/// Runs `ip ARGS`: Ok carries its stdout, Err its stderr.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Deletes the namespaces that crashed runs of any test binary left behind.
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()) else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        // Its sockets may keep the namespace alive for minutes: free the slot now.
        let links = ip(&["-n", &name, "-o", "link", "show"]).unwrap_or_default();
        for link in links.lines().filter_map(|l| l.split(": ").nth(1)) {
            let link = link.split('@').next().unwrap_or(link);
            if link.starts_with("sbn") {
                let _ = ip(&["-n", &name, "link", "del", link]);
            }
        }
        let _ = ip(&["netns", "del", &name]);
    }
}

/// Relays every connection accepted on `listener` to `target` until `stopping`.
fn forward(listener: TcpListener, target: String, stopping: Arc<AtomicBool>, pairs: Pairs) {
    static IDS: AtomicU64 = AtomicU64::new(0);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            if stopping.load(Ordering::SeqCst) {
                break;
            }
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&target) else {
                continue; // closing `client` tells it the database is down
            };
            let id = IDS.fetch_add(1, Ordering::SeqCst);
            let clones = (client.try_clone(), server.try_clone());
            let registered = (client.try_clone(), server.try_clone());
            let ((Ok(c), Ok(s)), (Ok(rc), Ok(rs))) = (clones, registered) else {
                continue;
            };
            pairs.lock().unwrap().insert(id, [rc, rs]);
            pipe(client, s, id, pairs.clone());
            pipe(server, c, id, pairs.clone());
        }
    });
}

fn pipe(mut from: TcpStream, mut to: TcpStream, id: u64, pairs: Pairs) {
    std::thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
        pairs.lock().unwrap().remove(&id);
    });
}

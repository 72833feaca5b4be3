//! A real Prometheus (Debian's package, installed by scripts/test.sh) for the
//! tests, and its HTTP query API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Prometheus, killed on drop.
pub struct Prometheus {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    config: PathBuf,
    args: Vec<String>,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(config: &Path, dir: &Path, addr: SocketAddr, args: &[String]) -> Child {
    Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is required (scripts/test.sh installs Debian's package)")
}

impl Prometheus {
    /// Start with this configuration file text and extra flags.
    pub fn start(config_yaml: &str, args: &[&str]) -> Prometheus {
        let dir = super::temp_dir(&format!("prometheus-{}", free_port()));
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_yaml).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = spawn(&config, &dir, addr, &args);
        Prometheus {
            child,
            addr,
            dir,
            config,
            args,
        }
    }

    /// Kill it (the data directory stays).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again on the same address with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(&self.config, &self.dir, self.addr, &self.args);
    }

    /// Wait until `/-/ready` answers 200.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(self.addr, "/-/ready").is_none() {
            assert!(Instant::now() < deadline, "prometheus not ready after 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn http_get(addr: SocketAddr, path_and_query: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path_and_query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let r = super::parse_response(&out);
    (r.status == 200).then(|| String::from_utf8_lossy(&r.body).into_owned())
}

pub fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The single value of an instant query, once Prometheus has one.
pub fn query(p: &Prometheus, q: &str) -> Option<f64> {
    query_at(p.addr, q)
}

/// The single value of an instant query to any Prometheus-compatible query
/// API at `addr` (Prometheus, VictoriaMetrics).
pub fn query_at(addr: SocketAddr, q: &str) -> Option<f64> {
    let body = http_get(addr, &format!("/api/v1/query?query={}", encode(q)))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    let first = result.first()?;
    first["value"][1].as_str()?.parse().ok()
}

/// Query until the value satisfies `ok` (30 s at most).
pub fn wait_query(p: &Prometheus, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
    wait_query_at(p.addr, q, ok)
}

/// [`wait_query`] against any Prometheus-compatible query API at `addr`.
pub fn wait_query_at(addr: SocketAddr, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = query_at(addr, q) {
            if ok(v) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "query {q:?} never satisfied; last {:?}",
            query_at(addr, q)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

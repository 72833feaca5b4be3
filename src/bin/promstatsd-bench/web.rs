//! The daemon with its web and push ports on fixed loopback ports, for the
//! HTTP scenarios (`--auth-flood`, `--slowloris`); stopped when dropped.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon started by [`start`].
pub struct WebDaemon {
    child: Child,
    /// The web port.
    pub web: SocketAddr,
    /// The push port.
    pub push: SocketAddr,
}

/// Start `daemon` with StatsD on an ephemeral UDP port, the web port on
/// 127.0.0.1:19102, the push port on 127.0.0.1:19091, and `extra` flags; return
/// once the web port accepts connections.
pub fn start(daemon: &str, extra: &[String]) -> WebDaemon {
    let web = SocketAddr::from(([127, 0, 0, 1], 19_102));
    let push = SocketAddr::from(([127, 0, 0, 1], 19_091));
    let child = Command::new(daemon)
        .arg("--statsd.listen-udp=127.0.0.1:0")
        .arg("--statsd.listen-tcp=")
        .arg(format!("--web.listen-address={web}"))
        .arg(format!("--push.listen-address={push}"))
        .arg("--log.level=error")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {daemon} ({e})"));
    let started = Instant::now();
    while TcpStream::connect(web).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    WebDaemon { child, web, push }
}

impl Drop for WebDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests timed by [`sample`]: median and 90th percentile in milliseconds of
/// those answered, and how many were and were not.
pub struct Sampled {
    pub median: f64,
    pub p90: f64,
    pub answered: usize,
    pub failed: usize,
}

/// Run `one` every 10 ms for `secs` seconds (and at least 5 times, however
/// long they take): `Some(ms)` when answered, `None` when not.
pub fn sample(secs: f64, mut one: impl FnMut() -> Option<f64>) -> Sampled {
    let t0 = Instant::now();
    let (mut ok, mut failed) = (Vec::new(), 0);
    while ok.len() + failed < 5 || t0.elapsed().as_secs_f64() < secs {
        match one() {
            Some(ms) => ok.push(ms),
            None => failed += 1,
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ok.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ok.get((ok.len() as f64 * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Sampled {
        median: at(0.5),
        p90: at(0.9),
        answered: ok.len(),
        failed,
    }
}

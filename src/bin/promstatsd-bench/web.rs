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

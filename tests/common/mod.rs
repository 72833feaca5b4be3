//! Test harness: the real `promstatsd` binary on ephemeral ports, real sockets,
//! a minimal HTTP client (the tests need raw control over requests).
#![allow(dead_code)]

pub mod prom;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_promstatsd");

/// A running daemon, killed on drop.
pub struct Daemon {
    pub child: Child,
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub web: SocketAddr,
    pub push: Option<SocketAddr>,
    pub log: Arc<Mutex<String>>,
}

fn address_of(log: &str, listener: &str) -> Option<String> {
    let needle = format!("listener={listener} address=");
    let line = log.lines().find(|l| l.contains(&needle))?;
    let start = line.find(&needle)? + needle.len();
    Some(line[start..].split_whitespace().next()?.to_string())
}

impl Daemon {
    /// Start with UDP, TCP and web on 127.0.0.1 ephemeral ports, plus `extra` flags.
    pub fn start(extra: &[&str]) -> Daemon {
        let mut args = vec![
            "--statsd.listen-udp=127.0.0.1:0",
            "--statsd.listen-tcp=127.0.0.1:0",
            "--web.listen-address=127.0.0.1:0",
            "--push.listen-address=127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        Self::start_raw(&args).unwrap_or_else(|log| panic!("daemon did not start:\n{log}"))
    }

    /// Start with exactly `args`; `Err(log)` if it exits or does not get ready.
    pub fn start_raw(args: &[&str]) -> Result<Daemon, String> {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {BIN}: {e}"))?;
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = log.lock().unwrap().clone();
            if text.contains("promstatsd started") {
                let parse = |l: &str| address_of(&text, l).and_then(|a| a.parse().ok());
                return Ok(Daemon {
                    udp: parse("udp"),
                    tcp: parse("tcp"),
                    web: parse("web").ok_or_else(|| format!("no web address in:\n{text}"))?,
                    push: parse("push"),
                    child,
                    log,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                let text = log.lock().unwrap().clone();
                return Err(format!("exited with {status}:\n{text}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("not ready after 10 s:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Send one UDP datagram.
    pub fn send_udp(&self, data: &[u8]) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(data, self.udp.expect("UDP listener")).unwrap();
    }

    /// GET the metrics page.
    pub fn scrape(&self) -> String {
        let r = self.get("/metrics", &[]);
        assert_eq!(r.status, 200, "scrape failed: {r:?}");
        String::from_utf8(r.body).expect("page is UTF-8")
    }

    /// Wait until `promstatsd_lines_total` reaches `n` (all sent lines ingested),
    /// and return the page.
    pub fn wait_lines(&self, n: u64) -> String {
        self.wait_for(|p| value(p, "promstatsd_lines_total").unwrap_or(0.0) as u64 >= n)
    }

    /// Scrape until `pred` holds (5 s at most), and return that page.
    pub fn wait_for(&self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for_secs(5, pred)
    }

    /// Scrape until `pred` holds (`secs` at most), and return that page.
    pub fn wait_for_secs(&self, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        self.wait_on("/metrics", secs, pred)
    }

    /// Scrape only the self-metrics until `pred` holds (`secs` at most): cheap
    /// however many series the store holds.
    pub fn wait_self(&self, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        self.wait_on("/metrics?collect[]=self", secs, pred)
    }

    fn wait_on(&self, path: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.get(path, &[]);
            assert_eq!(r.status, 200, "scrape failed: {r:?}");
            let page = String::from_utf8(r.body).expect("page is UTF-8");
            if pred(&page) {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "condition not met; last page:\n{page}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A raw HTTP/1.1 request with `Connection: close`.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        raw_http(self.web, req.as_bytes())
    }

    /// Send SIGTERM and wait for the exit code.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), 15);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(Instant::now() < deadline, "no exit 10 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Send a signal to the daemon.
pub fn signal(d: &Daemon, sig: i32) {
    unsafe_kill(d.child.id(), sig);
}

fn unsafe_kill(pid: u32, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Send raw bytes, read the whole response (the server closes the connection).
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Response {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// The value of the series written exactly as `series` (name plus `{labels}`).
pub fn value(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        let v = rest.strip_prefix(' ')?;
        match v {
            "NaN" => Some(f64::NAN),
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            v => v.parse().ok(),
        }
    })
}

/// A fresh temporary directory under the target dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("promstatsd-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Write `yaml` as a mapping file in a fresh temporary directory `name` and
/// return the flag that loads it.
pub fn mapping_flag(name: &str, yaml: &str) -> String {
    let file = temp_dir(name).join("mapping.yml");
    std::fs::write(&file, yaml).unwrap();
    format!("--statsd.mapping-config={}", file.display())
}

/// The outside data the tests replay (`tests/data/`, provenance in its README).
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The lines of a file in `tests/data/`.
pub fn read_lines(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(data_dir().join(file)).unwrap();
    text.lines().map(str::to_string).collect()
}

/// Send lines over UDP, several per datagram (at most 1400 bytes, as the datadog
/// client batches), pausing until the daemon has caught up every 20 datagrams so
/// a small kernel receive buffer cannot drop any.
pub fn replay(d: &Daemon, lines: &[String]) -> String {
    let mut sent = 0u64;
    let mut datagrams = 0;
    let mut buf = String::new();
    for l in lines {
        if !buf.is_empty() && buf.len() + l.len() + 1 > 1400 {
            d.send_udp(buf.as_bytes());
            buf.clear();
            datagrams += 1;
            if datagrams % 20 == 0 {
                d.wait_lines(sent);
            }
        }
        if !buf.is_empty() {
            buf.push('\n');
        }
        buf.push_str(l);
        sent += 1;
    }
    if !buf.is_empty() {
        d.send_udp(buf.as_bytes());
    }
    d.wait_lines(sent)
}

/// Sum of every sample of a family (all label sets).
pub fn total(page: &str, family: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// A self-signed certificate for 127.0.0.1 and localhost, made with openssl:
/// `(cert.pem, key.pem)` in `dir`.
pub fn self_signed_cert(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        // A leaf, not a CA: rustls refuses a CA certificate as the server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is required (scripts/test.sh installs it)");
    assert!(ok.success());
    (cert, key)
}

//! promstatsd inside another program: a whole server on ephemeral ports,
//! started, fed over UDP, scraped over HTTP, and shut down.
//!
//! `cargo run --example embed_server` prints the addresses it bound and the
//! line of the page its sample made, and exits with an error if the scrape
//! does not show it within five seconds.

use promstatsd::listener::ListenOptions;
use promstatsd::server::Server;
use promstatsd::Config;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn loopback_port_0() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// `GET /metrics` with a plain socket: the body of the answer.
fn scrape(web: SocketAddr) -> std::io::Result<String> {
    let mut conn = TcpStream::connect(web)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

fn main() -> ExitCode {
    let config = Config {
        listen: ListenOptions {
            udp: loopback_port_0(),
            tcp: None,
            ..ListenOptions::default()
        },
        web_listen: loopback_port_0(),
        push_listen: None,
        ..Config::default()
    };
    let server = match Server::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("embed_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addrs = server.addrs().clone();
    println!("bound: {addrs:?}");
    let (Some(udp), Some(web)) = (addrs.udp, addrs.web) else {
        eprintln!("embed_server: no UDP or web address bound");
        return ExitCode::FAILURE;
    };
    let sent = UdpSocket::bind("127.0.0.1:0").and_then(|s| s.send_to(b"embedded.jobs:3|c", udp));
    if let Err(e) = sent {
        eprintln!("embed_server: cannot send: {e}");
        return ExitCode::FAILURE;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let found = loop {
        match scrape(web) {
            Ok(page) => {
                if let Some(line) = page.lines().find(|l| l.starts_with("embedded_jobs ")) {
                    break Some(line.to_owned());
                }
            }
            Err(e) => eprintln!("embed_server: scrape failed: {e}"),
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    server.shutdown();
    match found {
        Some(line) if line == "embedded_jobs 3" => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("embed_server: expected `embedded_jobs 3`, found {other:?}");
            ExitCode::FAILURE
        }
    }
}

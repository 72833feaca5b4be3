//! Batched datagram receive: `recvmmsg(2)` on Linux, one `recv(2)` at a time elsewhere.

use std::io;
use std::os::fd::RawFd;

/// The socket's cumulative count of datagrams the kernel dropped for lack of
/// buffer space (Linux `SO_MEMINFO`, asked when wanted: nothing is added to each
/// datagram, unlike `SO_RXQ_OVFL`, whose control message cost about 3 % of the
/// ingest thread's time). `None` elsewhere or if the kernel does not say.
pub fn kernel_drops(fd: RawFd) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        let mut info = [0u32; 16];
        let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
        // SAFETY: a valid fd, and a writable buffer of `len` bytes with `len`
        // passed by pointer; the kernel writes at most `len` bytes and updates it.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_MEMINFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let i = libc::SK_MEMINFO_DROPS as usize;
        if r == 0 && len as usize >= (i + 1) * std::mem::size_of::<u32>() {
            return info.get(i).copied();
        }
        None
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        None
    }
}

/// Largest datagram we accept whole (the UDP maximum payload is 65,507 bytes).
pub const MAX_DATAGRAM: usize = 65_536;

/// A reusable set of receive buffers for one socket.
pub struct RecvBatch {
    bufs: Vec<u8>,
    size: usize,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    #[cfg(target_os = "linux")]
    iov: Vec<libc::iovec>,
    #[cfg(target_os = "linux")]
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside `iov`/`hdrs` only point into this struct's own
// heap buffers (`bufs`, `iov`), which move with it; nothing is shared.
unsafe impl Send for RecvBatch {}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("messages", &self.lens.len())
            .field("size", &self.size)
            .finish()
    }
}

impl RecvBatch {
    /// `n` buffers of `size` bytes each.
    pub fn new(n: usize, size: usize) -> Self {
        let n = n.max(1);
        let size = size.max(1);
        #[allow(unused_mut)]
        let mut b = Self {
            bufs: vec![0u8; n * size],
            size,
            lens: vec![0; n],
            truncated: vec![false; n],
            #[cfg(target_os = "linux")]
            iov: Vec::with_capacity(n),
            #[cfg(target_os = "linux")]
            hdrs: Vec::with_capacity(n),
        };
        #[cfg(target_os = "linux")]
        {
            let base = b.bufs.as_mut_ptr();
            for i in 0..n {
                b.iov.push(libc::iovec {
                    // SAFETY: `i * size` is within `bufs` (its length is `n * size`).
                    iov_base: unsafe { base.add(i * size) }.cast(),
                    iov_len: size,
                });
            }
            let iov_base = b.iov.as_mut_ptr();
            for i in 0..n {
                // SAFETY: mmsghdr is plain old data; all-zero is a valid value
                // (null name, no control data).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                // SAFETY: `i < n == iov.len()`, so the pointer stays inside `iov`.
                h.msg_hdr.msg_iov = unsafe { iov_base.add(i) };
                h.msg_hdr.msg_iovlen = 1;
                b.hdrs.push(h);
            }
        }
        b
    }

    /// Receive up to `n` datagrams without blocking. Returns how many arrived;
    /// `Err(WouldBlock)` when none were waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        {
            for h in &mut self.hdrs {
                h.msg_len = 0;
                h.msg_hdr.msg_flags = 0;
            }
            let n = self.hdrs.len() as libc::c_uint;
            // SAFETY: `hdrs` holds `n` initialised headers whose iovecs point at
            // `size`-byte regions of `bufs`, all alive and exclusively borrowed for
            // the call; a null timeout is allowed.
            let got = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    n,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if got < 0 {
                return Err(io::Error::last_os_error());
            }
            let got = got as usize;
            for i in 0..got {
                self.lens[i] = (self.hdrs[i].msg_len as usize).min(self.size);
                self.truncated[i] = self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            }
            Ok(got)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let mut got = 0;
            while got < self.lens.len() {
                let buf = &mut self.bufs[got * self.size..(got + 1) * self.size];
                // SAFETY: `buf` is a valid writable region of `buf.len()` bytes.
                let r = unsafe {
                    libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    return if got > 0 { Ok(got) } else { Err(e) };
                }
                self.lens[got] = r as usize;
                self.truncated[got] = false;
                got += 1;
            }
            Ok(got)
        }
    }

    /// The `i`-th datagram of the last `recv`, and whether it was truncated.
    pub fn message(&self, i: usize) -> (&[u8], bool) {
        let len = self.lens.get(i).copied().unwrap_or(0);
        let start = i * self.size;
        let msg = self.bufs.get(start..start + len).unwrap_or(&[]);
        (msg, self.truncated.get(i).copied().unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::RecvBatch;
    use std::os::fd::AsRawFd;

    #[test]
    fn receives_several_datagrams_in_one_call() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = rx.local_addr().unwrap();
        for m in ["a:1|c", "bb:2|c", "ccc:3|c"] {
            tx.send_to(m.as_bytes(), addr).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut b = RecvBatch::new(8, 1024);
        let n = b.recv(rx.as_raw_fd()).unwrap();
        assert_eq!(n, 3);
        assert_eq!(b.message(0).0, b"a:1|c");
        assert_eq!(b.message(2).0, b"ccc:3|c");
        let again = b.recv(rx.as_raw_fd()).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::WouldBlock);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn kernel_drops_are_read_from_the_socket() {
        let rx = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        rx.set_recv_buffer_size(1).unwrap(); // the kernel's minimum, a few KB
        rx.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        let addr = rx.local_addr().unwrap().as_socket().unwrap();
        assert_eq!(super::kernel_drops(rx.as_raw_fd()), Some(0));
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            tx.send_to(&[b'x'; 1000], addr).unwrap();
        }
        let drops = super::kernel_drops(rx.as_raw_fd()).unwrap();
        assert!(drops > 100, "{drops} of 200 dropped");
    }
}

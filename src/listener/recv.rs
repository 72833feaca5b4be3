//! Batched datagram receive: `recvmmsg(2)` on Linux, one `recv(2)` at a time elsewhere.

use std::io;
use std::os::fd::RawFd;

/// Control buffer per datagram, in u64 words: room for one `SO_RXQ_OVFL` message
/// (CMSG_SPACE(4) is 24 bytes on 64-bit Linux) with slack.
#[cfg(target_os = "linux")]
const CTRL_WORDS: usize = 8;

/// Ask the kernel to report, with each datagram, how many it dropped on this socket
/// for lack of buffer space (Linux `SO_RXQ_OVFL`; a no-op elsewhere).
pub fn enable_drop_reports(fd: RawFd) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let one: libc::c_int = 1;
        // SAFETY: a valid fd and a pointer to a c_int of the given size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RXQ_OVFL,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
    Ok(())
}

/// Largest datagram we accept whole (the UDP maximum payload is 65,507 bytes).
pub const MAX_DATAGRAM: usize = 65_536;

/// A reusable set of receive buffers for one socket.
pub struct RecvBatch {
    bufs: Vec<u8>,
    size: usize,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    /// The socket's cumulative kernel drop count (`SO_RXQ_OVFL`), as last reported.
    kernel_drops: Option<u32>,
    #[cfg(target_os = "linux")]
    iov: Vec<libc::iovec>,
    /// One control-message buffer per datagram, for `SO_RXQ_OVFL`.
    #[cfg(target_os = "linux")]
    ctrl: Vec<u64>,
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
            kernel_drops: None,
            #[cfg(target_os = "linux")]
            iov: Vec::with_capacity(n),
            #[cfg(target_os = "linux")]
            ctrl: vec![0u64; n * CTRL_WORDS],
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
            let ctrl_base = self.ctrl.as_mut_ptr();
            for (i, h) in self.hdrs.iter_mut().enumerate() {
                h.msg_len = 0;
                h.msg_hdr.msg_flags = 0;
                // SAFETY: `i * CTRL_WORDS` is within `ctrl` (its length is n * CTRL_WORDS).
                h.msg_hdr.msg_control = unsafe { ctrl_base.add(i * CTRL_WORDS) }.cast();
                h.msg_hdr.msg_controllen = CTRL_WORDS * 8;
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
                let hdr = &self.hdrs[i].msg_hdr;
                // SAFETY: the kernel filled `msg_control` (within the buffer we gave,
                // `msg_controllen` bytes) with well-formed control messages; the CMSG
                // macros only walk inside that range.
                let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(hdr) };
                while !cmsg.is_null() {
                    // SAFETY: `cmsg` is non-null and points inside the control buffer.
                    let c = unsafe { &*cmsg };
                    if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SO_RXQ_OVFL {
                        // SAFETY: an SO_RXQ_OVFL message carries one u32; read it
                        // unaligned as the data may not be aligned for u32.
                        let v = unsafe {
                            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<u32>())
                        };
                        self.kernel_drops = Some(self.kernel_drops.map_or(v, |d| d.max(v)));
                    }
                    // SAFETY: as above; returns null past the last message.
                    cmsg = unsafe { libc::CMSG_NXTHDR(hdr, cmsg) };
                }
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

    /// The socket's cumulative count of datagrams the kernel dropped for lack of
    /// buffer space, as last reported (Linux, with `SO_RXQ_OVFL` enabled).
    pub fn kernel_drops(&self) -> Option<u32> {
        self.kernel_drops
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
}

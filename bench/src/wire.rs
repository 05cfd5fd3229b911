//! A wire with latency between two network namespaces, for the WAN scenario.
//!
//! `tc netem` is the usual way to add delay, but kernels built without `sch_netem` (like the
//! Firecracker guest kernel this project's machines run) cannot load it. This is the same idea
//! in user space: one TUN device in each namespace, and a relay that holds every IP packet for
//! the one-way delay before handing it to the other side. TCP runs end to end over it, so slow
//! start, windows and acknowledgements see the real round-trip time.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn setns(file: &File) -> Result<()> {
    // SAFETY: setns on a namespace file descriptor we own; it changes this thread's namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Attach to the persistent TUN device `dev` that lives in network namespace `netns`.
fn open_tun(netns: &str, dev: &str) -> Result<File> {
    let home = File::open("/proc/self/ns/net")?;
    let ns = File::open(format!("/var/run/netns/{netns}"))
        .with_context(|| format!("network namespace {netns}"))?;
    setns(&ns)?;
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .context("/dev/net/tun");
    let attached = tun.and_then(|tun| {
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            _pad: [0; 22],
        };
        let n = dev.len().min(libc::IFNAMSIZ - 1);
        req.name[..n].copy_from_slice(&dev.as_bytes()[..n]);
        // SAFETY: TUNSETIFF reads an ifreq; `req` is one, laid out as the kernel expects.
        let rc = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF, &mut req) };
        if rc != 0 {
            bail!(
                "TUNSETIFF {dev} in {netns}: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(tun)
    });
    setns(&home)?;
    attached
}

/// Copy packets from one device to the other, each `delay` after it arrived.
fn pump(mut from: File, mut to: File, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            match from.read(&mut buf) {
                Ok(n) if n > 0 => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
                _ => return,
            }
        }
    });
    std::thread::spawn(move || {
        for (due, packet) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            // A packet the other side cannot take is lost, as on a real wire.
            let _ = to.write(&packet);
        }
    });
}

/// Run the wire until killed: `a` and `b` are (namespace, TUN device) pairs.
pub fn run(a: (&str, &str), b: (&str, &str), one_way: Duration) -> Result<()> {
    let ta = open_tun(a.0, a.1)?;
    let tb = open_tun(b.0, b.1)?;
    pump(ta.try_clone()?, tb.try_clone()?, one_way);
    pump(tb, ta, one_way);
    eprintln!(
        "wire {}:{} <-> {}:{} up, {} ms each way",
        a.0,
        a.1,
        b.0,
        b.1,
        one_way.as_millis()
    );
    loop {
        std::thread::park();
    }
}

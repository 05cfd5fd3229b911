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
/// `_IOW('T', 208, unsigned int)`: which offloads the reader of a TUN device accepts.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const IFF_VNET_HDR: libc::c_int = 0x4000;
const TUN_F_CSUM: libc::c_ulong = 0x01;
const TUN_F_TSO4: libc::c_ulong = 0x02;
const TUN_F_TSO6: libc::c_ulong = 0x04;
/// The largest packet a read can return: a 64 KiB GSO packet plus its virtio-net header.
const READ_MAX: usize = 128 * 1024;

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
            flags: (libc::IFF_TUN | libc::IFF_NO_PI | IFF_VNET_HDR) as libc::c_short,
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
        // Segmentation and checksum offload, as a real NIC has (TSO on the sender, GRO on the
        // receiver): TCP still sees a 1500-byte MTU and its segment size, but the relay moves
        // up to 64 KiB per packet. Without it the relay handles every 1500-byte packet on its
        // own and spends most of a core doing so, which a real network never takes from the
        // machines at its ends.
        let offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        let rc = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETOFFLOAD, offload) };
        if rc != 0 {
            bail!(
                "TUNSETOFFLOAD {dev} in {netns}: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(tun)
    });
    setns(&home)?;
    attached
}

/// Copy packets from one device to the other, each `delay` after it arrived. Each packet keeps
/// its virtio-net header, so a segmentation-offloaded packet stays one on the other side.
fn pump(mut from: File, mut to: File, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; READ_MAX];
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
